"""Region features of every training sample at one checkpoint.

:func:`sample_features` returns a :class:`Features` table: named ``(N,)``
arrays, one value per sample, each labelled ``'exact'`` (computed from the
exact partition or exactly from the network) or ``'sampled'`` (from the
patterns at the training samples only: a lower bound on what it counts).

Raw-coordinate models (no encoding), 1D or 2D, all exact:

=====================  ==========================================================
``region``             index of the sample's region in the exact partition
``measure``            area (2D) or length (1D) of that region
``inradius``           radius of the largest disk (interval) inside the region
``occupancy``          number of training samples in the same region
``density``            number of regions meeting the disk/interval of radius
                       ``radius`` around the sample
``dist_boundary``      distance to the nearest neuron boundary of the region:
                       ``min_k |z_k(x)| / |grad_x z_k(x)|`` over all neurons with
                       the *local* gradient (all layers); equals the distance to
                       the boundary of the (unclipped) convex region
``dist_polygon``       distance to the boundary of the region clipped to the
                       domain (2D: shapely distance to the polygon's boundary)
``dist_layer1``        ``min_k |z_1k| / |W_1[k]|``: the first layer's own lines
``dist_paper``         the authors' ``min_{l,k} |z_lk| / |W_l[k]|`` (exact for layer
                       1 only; kept for comparison)
``hamming``            mean Hamming distance of the sample's pattern to those of its
                       grid neighbours (4-neighbours in 2D, 2 in 1D)
``hamming_l{i}``       the same restricted to hidden layer ``i`` (1-based)
``crossings``          mean number of region boundaries crossed by the straight
                       segments to the grid neighbours (exact walk along the segment)
=====================  ==========================================================

Encoded models (a :class:`regions.encoding.Encoding` in front):

* 1D, exact from the encoded 1D partition: ``region`` is the pattern id (pieces
  with equal patterns form one region, possibly disconnected), ``measure`` its
  total length, ``piece_length`` the sample's connected piece, ``inradius`` the
  largest half-length over the region's pieces, ``occupancy``, ``density``
  (pieces meeting the interval), ``dist_boundary`` (to the nearest breakpoint),
  ``hamming*`` and ``crossings`` (breakpoints between neighbouring samples).
* 2D: ``hamming*`` (exact: patterns at the samples), ``crossings`` (exact
  crossings along grid rows and columns, :func:`regions.grid_crossings`), the
  exact features of the face (connected region) holding each sample, from
  :func:`regions.encoded.sample_faces` without the whole partition: ``region``
  (one id per face), ``measure`` (its area; the certified intervals in
  ``meta["measure_bounds"]``), ``inradius``, ``occupancy``, ``dist_boundary``
  (to the face's curves) and ``dist_polygon`` (domain sides included); areas
  certified within 5% of each face's area, boundaries within ``1e-6`` or finer
  (:data:`regions.study.geometric_features.FACE_TOL`, ``FACE_REL_TOL``); with ``encoded_faces=False`` instead, labelled
  ``'sampled'``, ``region`` / ``occupancy`` / ``measure`` from the distinct
  patterns at the samples. ``density`` (distinct patterns in the window of
  radius ``radius``) is always sampled: the faces near a sample that hold no
  sample are not cut.

The geometry comes from :mod:`regions.geometry` (``dist_*`` from
:func:`regions.geometry.boundary_distances`, raw ``crossings`` from
:func:`regions.geometry.segment_crossings`) and :func:`regions.grid_crossings`.
"""
from __future__ import annotations

import numpy as np

from ..network import as_network
from .feature_table import Features, grid_step
from .geometric_features import encoded_1d_features, raw_features
from .pattern_features import encoded_2d_features, hamming_features

__all__ = ["Features", "sample_features", "default_domain"]


def default_domain(coords, grid_shape=None):
    """A box (2D) or interval (1D) around the samples: their range padded by half a
    grid step on each side (by 1e-9 of the span without a grid)."""
    coords = np.asarray(coords, dtype=np.float64)
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    if grid_shape is not None:
        shape = tuple(grid_shape)
        # coords index order: 2D grids are (H, W) with x = column, y = row
        counts = np.array(shape[::-1] if len(shape) == 2 else shape, dtype=float)
        pad = 0.5 * span / np.maximum(counts - 1, 1)
    else:
        pad = 1e-9 * span
    lo, hi = lo - pad, hi + pad
    if coords.shape[1] == 1:
        return (float(lo[0]), float(hi[0]))
    return ((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))


def sample_features(model, coords, grid_shape=None, domain=None, radius=None,
                    partition=None, layers=True, encoded_crossings=True, encoded_faces=True):
    """Region features of every sample at one checkpoint (see the module docstring).

    Parameters
    ----------
    model : torch model, state_dict, (W, b) list or regions.Network
        At the checkpoint. An encoding in front makes it an encoded model.
    coords : (N, d) array, d = 1 or 2
        The training samples' coordinates (before any encoding), in the
        domain's coordinates; row-major grid order when ``grid_shape`` is given.
    grid_shape : (n,) or (H, W), optional
        Needed for the neighbour features (Hamming, crossings).
    domain : optional
        Where the partition is computed (default :func:`default_domain`).
    radius : float, optional
        Radius of the disk/interval for ``density`` (default: one grid step).
    partition : regions.Partition or False, optional
        A partition already computed for this model and domain (reused);
        ``False`` skips the partition-based features (network-exact ones stay).
    layers : bool
        Add per-layer Hamming distances.
    encoded_crossings : bool
        For encoded 2D models, compute the exact crossings along rows and
        columns (:func:`regions.grid_crossings`; the costly part, seconds to
        tens of seconds for 32x32 pixels at L = 5).
    encoded_faces : bool
        For encoded 2D models, the exact features of the face holding each
        sample (:func:`regions.encoded.sample_faces`; seconds for 256 samples of
        a 2x128 network at L = 5); ``False``: the sampled ones.

    Returns
    -------
    Features
        ``meta`` holds ``radius``, ``n_regions`` (exact count in the domain,
        when known), ``n_patterns_sampled`` and ``domain``; for raw models
        also ``layer_distances``: ``{'local': ..., 'weight_norm': ...}``, the
        ``(N, n_layers)`` per-layer distances of
        :func:`regions.geometry.boundary_distances` by either method.
    """
    net = as_network(model)
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 1:
        coords = coords[:, None]
    if coords.ndim != 2 or coords.shape[1] not in (1, 2):
        raise ValueError(f"coords must be (N, 1) or (N, 2), got shape {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coords contain NaN or infinite values")
    n, dim = coords.shape
    if dim != net.input_dim:
        raise ValueError(f"coords have {dim} columns but the model takes {net.input_dim}-"
                         "dimensional coordinates" + (" (before its encoding)" if net.encoding
                                                       is not None else ""))
    if grid_shape is not None:
        grid_shape = tuple(int(s) for s in np.atleast_1d(grid_shape))
        if int(np.prod(grid_shape)) != n or len(grid_shape) != dim:
            raise ValueError(f"grid_shape {grid_shape} does not match {n} samples in {dim}D")
    if domain is None:
        domain = default_domain(coords, grid_shape)
    if radius is None:
        radius = grid_step(coords, grid_shape) if grid_shape is not None else 0.01
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")

    f = Features(n)
    f.meta.update(radius=radius, domain=domain, dim=dim,
                  encoded=net.encoding is not None)
    x_in = net.encoding.encode_numpy(coords) if net.encoding is not None else coords
    pats = net.patterns(x_in)
    f.meta["n_patterns_sampled"] = int(len(np.unique(pats, axis=0)))
    f.meta["widths"] = net.widths

    if net.encoding is None:
        raw_features(f, net, coords, grid_shape, domain, radius, partition)
    elif dim == 1:
        encoded_1d_features(f, net, coords, grid_shape, domain, radius, partition)
    else:
        encoded_2d_features(f, net, coords, grid_shape, radius, pats, encoded_crossings,
                            faces=domain if encoded_faces else None)

    if grid_shape is not None:
        hamming_features(f, net, pats, grid_shape, layers)
    return f
