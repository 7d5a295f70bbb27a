"""Seeded synthetic targets: the paper's 1D sum of sinusoids, its white-noise
image, and band-limited random images (:mod:`regions.study.signals`)."""
from __future__ import annotations

import numpy as np

from ..grid import grid_coordinates
from .signal import Signal, image_size

__all__ = ["sum_of_sinusoids", "random_image", "band_limited_image"]


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
    coord_range, endpoint
        The coordinate grid fed to the network (see :mod:`regions.study.signals`).

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
    coord_range, endpoint
        The coordinate grid (see :mod:`regions.study.signals`).

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
        The coordinate grid (see :mod:`regions.study.signals`).

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
    from ..bands import radial_frequency

    H, W = image_size(size)
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
