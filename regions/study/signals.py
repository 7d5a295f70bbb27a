"""Target signals on regular 1D and 2D grids, for coordinate-MLP training.

A :class:`Signal` is plain arrays: the grid coordinates the network sees,
the targets, the grid shape and the coordinate range. Every constructor
validates its input (shape, finiteness, non-empty) and raises a
``ValueError`` naming the problem before any training starts.

Grid conventions
----------------
* 1D, ``n`` points: ``t_i = lo + (hi - lo) * i / n`` (half-open ``[lo, hi)``,
  ``(0, 1)`` gives the paper's ``t = i / n``); ``grid_shape = (n,)``.
* 2D, ``H x W`` pixels, row-major flattening ``index = row * W + col``;
  ``coords[:, 0] = x = lo + (hi - lo) * col / W`` and
  ``coords[:, 1] = y = lo + (hi - lo) * row / H``; ``grid_shape = (H, W)``.
* ``endpoint=True`` divides by ``n - 1`` instead (a closed grid, like the
  paper's ``linspace(0, 1, W)`` for its 2D positional-encoding runs).

The grid itself (coordinates, steps, neighbour pairs) is :mod:`regions.study.grid`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import check_coord_range, check_grid_shape, grid_coordinates

__all__ = ["Signal", "sum_of_sinusoids", "random_image", "band_limited_image", "natural_image",
           "image_file", "from_array", "NATURAL_IMAGE"]


@dataclass
class Signal:
    """Targets on a regular grid.

    Attributes
    ----------
    name : str
        A label for reports.
    coords : ndarray
        ``(N, d)`` float64 grid coordinates in ``coord_range`` (``d`` = 1 or 2).
    targets : ndarray
        ``(N, C)`` float64 targets, finite.
    grid_shape : tuple
        ``(N,)`` in 1D, ``(H, W)`` in 2D (row-major; ``coords[:, 0]`` is x, the
        column, and ``coords[:, 1]`` is y, the row).
    coord_range : tuple
        ``(lo, hi)`` of the grid, half-open unless ``endpoint``.
    endpoint : bool
        Whether the grid includes ``hi`` (``linspace`` with the end point).
    """

    name: str
    coords: np.ndarray
    targets: np.ndarray
    grid_shape: tuple
    coord_range: tuple = (0.0, 1.0)
    endpoint: bool = False

    def __post_init__(self):
        self.coord_range = check_coord_range(self.coord_range)
        self.endpoint = bool(self.endpoint)
        try:
            self.grid_shape = check_grid_shape(self.grid_shape)
        except ValueError as err:
            raise ValueError(f"Signal {self.name!r}: {err}") from None
        N = int(np.prod(self.grid_shape))
        coords = np.asarray(self.coords, dtype=np.float64)
        targets = np.asarray(self.targets, dtype=np.float64)
        if targets.ndim == 1:
            targets = targets[:, None]
        if coords.shape != (N, len(self.grid_shape)):
            raise ValueError(f"Signal {self.name!r}: coords must have shape "
                             f"{(N, len(self.grid_shape))} for grid_shape {self.grid_shape}, "
                             f"got {coords.shape}")
        if targets.ndim != 2 or targets.shape[0] != N or targets.shape[1] < 1:
            raise ValueError(f"Signal {self.name!r}: targets must have shape (N, C) = ({N}, C) "
                             f"for grid_shape {self.grid_shape}, got {targets.shape}")
        _check_finite(targets, f"Signal {self.name!r} targets")
        if not np.all(np.isfinite(coords)):
            raise ValueError(f"Signal {self.name!r}: coords contain NaN or inf")
        self.coords, self.targets = coords, targets

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return int(self.targets.shape[0])

    @property
    def dim(self) -> int:
        """Input dimension (1 or 2)."""
        return len(self.grid_shape)

    @property
    def channels(self) -> int:
        """Number of output channels ``C``."""
        return int(self.targets.shape[1])

    def as_grid(self, values=None):
        """Reshape per-sample values (default: the targets) to the grid.

        ``(N,)`` -> ``grid_shape``; ``(N, C)`` -> ``grid_shape + (C,)``.
        """
        v = self.targets if values is None else np.asarray(values)
        if v.shape[0] != self.n:
            raise ValueError(f"values must have {self.n} rows (one per sample), got {v.shape}")
        return v.reshape(self.grid_shape + v.shape[1:])

    def __repr__(self):
        return (f"Signal(name={self.name!r}, grid_shape={self.grid_shape}, "
                f"channels={self.channels}, coord_range={self.coord_range})")


def _check_finite(a, what):
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise ValueError(f"{what} contain {int(bad.sum())} NaN or inf values (first at index "
                         f"{first}); targets must be finite")


def sum_of_sinusoids(n=2048, ks=tuple(range(5, 75, 5)), seed=0, coord_range=(0, 1),
                     endpoint=False) -> Signal:
    """The paper's 1D signal ``y(t) = sum_k sin(2 pi k t + 2 pi phi_k)``.

    Parameters
    ----------
    n : int
        Number of grid points; ``t = i / n`` in ``[0, 1)`` (the phase uses this
        ``t`` whatever ``coord_range`` the network sees).
    ks : sequence of int
        Frequencies in cycles over the grid (default 5, 10, ..., 70).
    seed : int
        Seed of the phases ``phi_k ~ U[0, 1)`` (``numpy.random.default_rng``).
    coord_range : tuple
        Range of the coordinates fed to the network.
    endpoint : bool
        Closed coordinate grid (see :func:`grid_coordinates`).

    Returns
    -------
    Signal
        ``targets`` shaped ``(n, 1)``.

    Examples
    --------
    >>> s = sum_of_sinusoids(n=64, ks=(1, 2))
    >>> s.coords.shape, s.targets.shape, s.grid_shape
    ((64, 1), (64, 1), (64,))
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n}")
    ks = np.asarray(ks, dtype=np.float64).ravel()
    if ks.size == 0 or not np.all(np.isfinite(ks)):
        raise ValueError(f"ks must be a non-empty sequence of finite frequencies, got {ks!r}")
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0.0, 1.0, size=ks.size)
    t = np.arange(n) / n
    y = np.sin(2 * np.pi * (t[:, None] * ks[None, :] + phi[None, :])).sum(axis=1)
    return Signal(name=f"sinusoids{n}", coords=grid_coordinates((n,), coord_range, endpoint),
                  targets=y[:, None], grid_shape=(n,), coord_range=coord_range,
                  endpoint=endpoint)


def random_image(size=64, channels=3, seed=0, coord_range=(0, 1), endpoint=False) -> Signal:
    """A seeded white-noise image, ``randint(0, 255) / 255`` as in the paper.

    Parameters
    ----------
    size : int or (H, W)
        Image size.
    channels : int
        Number of channels.
    seed : int
        Seed for ``numpy.random.default_rng``.
    coord_range : tuple
        Coordinate range.
    endpoint : bool
        Closed coordinate grid (see :func:`grid_coordinates`).

    Returns
    -------
    Signal
        ``targets`` shaped ``(H * W, channels)`` with values in ``[0, 254/255]``.

    Examples
    --------
    >>> s = random_image(8, channels=1)
    >>> s.grid_shape, s.targets.shape
    ((8, 8), (64, 1))
    """
    H, W = (size, size) if np.isscalar(size) else tuple(size)
    H, W, channels = int(H), int(W), int(channels)
    if H < 1 or W < 1 or channels < 1:
        raise ValueError(f"size and channels must be positive, got size={size!r}, "
                         f"channels={channels}")
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(H, W, channels)).astype(np.float64) / 255.0
    return Signal(name=f"noise{H}x{W}x{channels}",
                  coords=grid_coordinates((H, W), coord_range, endpoint),
                  targets=img.reshape(H * W, channels), grid_shape=(H, W),
                  coord_range=coord_range, endpoint=endpoint)


def _image_size(size):
    """``(H, W)`` of an int or pair, positive integers, else ``ValueError``."""
    try:
        H, W = (size, size) if np.isscalar(size) else tuple(size)
        H, W = int(H), int(W)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or an (H, W) pair of ints, got {size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return H, W


def band_limited_image(size=32, channels=3, max_frequency=4.0, seed=0, coord_range=(0, 1),
                       endpoint=False) -> Signal:
    """A seeded random image whose spectrum holds only frequencies up to
    ``max_frequency`` cycles over the grid, scaled to ``[0, 1]``.

    Every DFT bin with radial frequency ``0 < |k| <= max_frequency``
    (:func:`regions.study.bands.radial_frequency`) gets a complex
    standard normal coefficient (``numpy.random.default_rng(seed)``), every
    other bin zero; the image is the real part of the inverse DFT (the set of
    bins is symmetric under ``k -> -k``, so taking the real part keeps the
    spectrum in it), then each channel is mapped affinely onto ``[0, 1]``
    (which changes the DC bin only). No bin above ``max_frequency`` carries
    energy (to rounding), so a network that learns low frequencies first
    (spectral bias) can fit it fast, unlike white noise.

    Parameters
    ----------
    size : int or (H, W)
        Image size.
    channels : int
        Number of channels, drawn independently.
    max_frequency : float
        Band limit in cycles over the grid: ``0 < max_frequency < min(H, W) / 2``
        (below the Nyquist bins, which have no negative partner).
    seed : int
        Seed of the coefficients.
    coord_range, endpoint
        The coordinate grid (see :func:`grid_coordinates`).

    Returns
    -------
    Signal
        ``targets`` shaped ``(H * W, channels)`` in ``[0, 1]`` (each channel
        reaching both ends).

    Examples
    --------
    >>> s = band_limited_image(16, channels=1, max_frequency=2)
    >>> s.grid_shape, float(s.targets.min()), float(s.targets.max())
    ((16, 16), 0.0, 1.0)
    """
    from .bands import radial_frequency

    H, W = _image_size(size)
    channels = int(channels)
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    f_max = float(max_frequency)
    if not (np.isfinite(f_max) and 0 < f_max < min(H, W) / 2):
        raise ValueError(f"max_frequency must be in (0, min(H, W) / 2) = (0, {min(H, W) / 2:g}) "
                         f"cycles for a {H}x{W} image, got {max_frequency!r}")
    f = radial_frequency((H, W))
    inside = (f > 0) & (f <= f_max)
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, channels))
    for c in range(channels):
        spec = np.zeros((H, W), dtype=np.complex128)
        spec[inside] = rng.standard_normal(int(inside.sum())) \
            + 1j * rng.standard_normal(int(inside.sum()))
        x = np.fft.ifft2(spec).real
        img[..., c] = (x - x.min()) / (x.max() - x.min())
    return Signal(name=f"band{f_max:g}-{H}x{W}x{channels}",
                  coords=grid_coordinates((H, W), coord_range, endpoint),
                  targets=img.reshape(H * W, channels), grid_shape=(H, W),
                  coord_range=coord_range, endpoint=endpoint)


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
        The coordinate grid (see :func:`grid_coordinates`).

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

    H, W = _image_size(size)
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
    coord_range : tuple
        Coordinate range.
    endpoint : bool
        Closed coordinate grid (see :func:`grid_coordinates`).

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


def from_array(targets, coord_range=(0, 1), name="array", dim=None, endpoint=False) -> Signal:
    """Targets given as an array on a 1D or 2D grid.

    Parameters
    ----------
    targets : array_like
        ``(N,)`` or ``(N, C)`` for a 1D grid, ``(H, W)`` or ``(H, W, C)`` for a
        2D grid. A 2-dimensional array is ambiguous: it is read as ``(N, C)``
        when ``dim=1`` and as an ``(H, W)`` image when ``dim=2``; with
        ``dim=None`` it is an error unless its second axis has size 1 (then 1D).
    coord_range : tuple
        Coordinate range.
    endpoint : bool
        Closed coordinate grid (see :func:`grid_coordinates`).
    name : str
        Label.
    dim : {None, 1, 2}
        Grid dimension.

    Returns
    -------
    Signal

    Examples
    --------
    >>> from_array(np.zeros(5)).grid_shape
    (5,)
    >>> from_array(np.zeros((4, 6)), dim=2).grid_shape
    (4, 6)
    >>> from_array(np.zeros((4, 6, 3))).targets.shape
    (24, 3)
    """
    if dim not in (None, 1, 2):
        raise ValueError(f"dim must be None, 1 or 2, got {dim!r}")
    try:
        a = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"targets must be a numeric array, got {type(targets).__name__}: "
                         f"{err}") from None
    if a.size == 0:
        raise ValueError(f"targets are empty (shape {a.shape}); need at least one sample")
    if a.ndim == 2 and dim is None:
        if a.shape[1] == 1:
            dim = 1
        else:
            raise ValueError(f"targets of shape {a.shape} are ambiguous: pass dim=1 for N="
                             f"{a.shape[0]} samples with C={a.shape[1]} channels, or dim=2 for "
                             f"an {a.shape[0]}x{a.shape[1]} image")
    if dim is None:
        dim = {1: 1, 3: 2}.get(a.ndim)
    if dim == 1 and a.ndim in (1, 2):
        grid = (a.shape[0],)
        a = a.reshape(a.shape[0], -1)
    elif dim == 2 and a.ndim in (2, 3):
        grid = a.shape[:2]
        a = a.reshape(grid[0] * grid[1], -1)
    else:
        raise ValueError(f"targets must be (N,) or (N, C) for a 1D grid, or (H, W) or (H, W, C) "
                         f"for a 2D grid; got shape {np.shape(targets)} (dim={dim})")
    _check_finite(a, f"targets {name!r}")
    return Signal(name=name, coords=grid_coordinates(grid, coord_range, endpoint), targets=a,
                  grid_shape=grid, coord_range=coord_range, endpoint=endpoint)
