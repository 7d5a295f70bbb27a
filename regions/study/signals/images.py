"""Image files as 2D signals, and matplotlib's sample photograph
(:mod:`regions.study.signals`)."""
from __future__ import annotations

import numpy as np

from ..grid import grid_coordinates
from .signal import Signal, from_array, image_size

__all__ = ["NATURAL_IMAGE", "natural_image", "image_file"]


#: The natural image of :func:`natural_image`: matplotlib's sample photograph
#: (600 x 512 RGB, shipped in ``mpl-data/sample_data``; no download).
NATURAL_IMAGE = "grace_hopper.jpg"


def natural_image(size=32, channels=3, coord_range=(0, 1), endpoint=False) -> Signal:
    """Matplotlib's sample photograph of Grace Hopper, downsampled to the grid.

    The picture (:data:`NATURAL_IMAGE`, read with
    ``matplotlib.cbook.get_sample_data``) is cropped to the centred ``k H x k W``
    block with the largest integer ``k`` that fits, and every ``k x k`` block
    is averaged (an exact box filter: deterministic, no interpolation, no
    aliasing above the block size); ``uint8`` values are divided by 255.

    Parameters
    ----------
    size : int or (H, W)
        Grid size, at most the photograph's 600 x 512.
    channels : {3, 1}
        RGB, or one channel: the mean of R, G and B.
    coord_range, endpoint
        The coordinate grid (see :mod:`regions.study.signals`).

    Returns
    -------
    Signal
        ``targets`` shaped ``(H * W, channels)`` in ``[0, 1]``.

    Examples
    --------
    >>> s = natural_image(16)
    >>> s.grid_shape, s.channels
    ((16, 16), 3)
    """
    from matplotlib import cbook

    H, W = image_size(size)
    if int(channels) not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (grey), got {channels!r}")
    path = cbook.get_sample_data(NATURAL_IMAGE, asfileobj=False)
    from matplotlib.image import imread
    photo = np.asarray(imread(path))
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"{NATURAL_IMAGE}: expected an 8-bit RGB image, got {photo.dtype} "
                         f"{photo.shape}")
    PH, PW = photo.shape[:2]
    k = min(PH // H, PW // W)
    if k < 1:
        raise ValueError(f"size {H}x{W} exceeds the photograph's {PH}x{PW} pixels")
    top, left = (PH - k * H) // 2, (PW - k * W) // 2
    crop = photo[top:top + k * H, left:left + k * W].astype(np.float64) / 255.0
    img = crop.reshape(H, k, W, k, 3).mean(axis=(1, 3))
    if int(channels) == 1:
        img = img.mean(axis=2, keepdims=True)
    return Signal(name=f"hopper{H}x{W}x{int(channels)}",
                  coords=grid_coordinates((H, W), coord_range, endpoint),
                  targets=img.reshape(H * W, -1), grid_shape=(H, W),
                  coord_range=coord_range, endpoint=endpoint)


def _resize(img, size):
    H, W = (size, size) if np.isscalar(size) else tuple(int(s) for s in size)
    if (H, W) == img.shape[:2]:
        return img
    # Pillow comes with matplotlib (a dependency); no silent nearest-neighbour
    # fallback, which would give another image on another installation
    from PIL import Image

    chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32), mode="F")
                        .resize((W, H), Image.BILINEAR), dtype=np.float64)
             for c in range(img.shape[2])]
    return np.stack(chans, axis=-1)


def image_file(path, size=None, coord_range=(0, 1), endpoint=False) -> Signal:
    """An image file as a 2D signal with values in ``[0, 1]``.

    Parameters
    ----------
    path : str or path-like
        Any format ``matplotlib.image.imread`` (or PIL) reads. Integer images
        are divided by their dtype's maximum; an alpha channel is dropped;
        grayscale gives one channel.
    size : int or (H, W), optional
        Resize to this size (bilinear with PIL, else nearest neighbour).
    coord_range, endpoint
        The coordinate grid (see :mod:`regions.study.signals`).

    Returns
    -------
    Signal
    """
    import os
    if not os.path.isfile(path):
        raise ValueError(f"image file {str(path)!r} does not exist")
    try:
        from matplotlib.image import imread
        img = np.asarray(imread(path))
    except Exception:  # noqa: BLE001 - fall back to PIL for formats matplotlib lacks
        try:
            from PIL import Image
            img = np.asarray(Image.open(path))
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"could not read image file {str(path)!r}: {err}") from None
    if np.issubdtype(img.dtype, np.integer):
        img = img.astype(np.float64) / np.iinfo(img.dtype).max
    img = img.astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4) or min(img.shape[:2]) < 1:
        raise ValueError(f"image file {str(path)!r}: expected an (H, W) or (H, W, 1..4) image, "
                         f"got shape {img.shape}")
    if img.shape[2] in (2, 4):  # drop alpha
        img = img[..., :-1]
    if size is not None:
        img = _resize(img, size)
    name = os.path.splitext(os.path.basename(str(path)))[0]
    return from_array(img, coord_range=coord_range, name=name, dim=2, endpoint=endpoint)
