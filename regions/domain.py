"""Domains: where in input space a partition is computed.

Every domain is a low-dimensional parameter space (``dim`` = 1 or 2) mapped
affinely into the network's input space: ``x = origin + basis @ u``. The
engines work in the domain's own coordinates ``u``; a slice through a
high-dimensional input is the same mechanism as a plain interval or box
(the map is composed into the first layer, see :meth:`Network.sliced`).

Accepted forms (see :func:`as_domain`)
--------------------------------------
* ``(lo, hi)``: an interval of a 1-input network;
* ``((x0, x1), (y0, y1))``: a box of a 2-input network;
* a shapely ``Polygon`` (convex or not, holes allowed) of a 2-input network;
* :class:`Segment` ``(p0, p1)``: the segment between two points of any input
  dimension, parameter ``t`` in ``[0, 1]`` (``x = p0 + t (p1 - p0)``);
* :class:`Plane`: a 2D slice of any input dimension, through three points or
  an origin and two directions, with a ``(u, v)`` box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Domain", "Interval", "Box", "PolygonDomain", "Segment", "Plane", "as_domain"]


# Largest coordinate magnitude a domain may have: the engines multiply two
# coordinates (areas, cross products, affine maps), and the product of two
# numbers below 1e150 stays far from float64's overflow at 1.8e308.
MAX_COORDINATE = 1e150
_SCALE_RULE = (f"coordinates must be finite with magnitude at most {MAX_COORDINATE:g}, so that "
               "products of two coordinates stay finite in float64")


def _check_scale(values, what):
    """Refuse coordinates (bounds, points, directions) that are non-finite or so large
    that the products the engines form would overflow."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be finite, got {v.ravel()[:6].tolist()}")
    big = np.abs(v).max(initial=0.0)
    if big > MAX_COORDINATE:
        raise ValueError(f"{what} has a coordinate of magnitude {big:g}; {_SCALE_RULE}")


def _check_measure(measure, what):
    """Refuse a domain whose length or area is not a positive finite float64."""
    if not (np.isfinite(measure) and measure > 0):
        raise ValueError(f"{what} is {measure:g}, which float64 cannot use: the domain's "
                         "length or area must be a positive finite number (widths neither "
                         "overflow nor underflow when multiplied)")


def _finite_pair(pair, what):
    try:
        lo, hi = (float(pair[0]), float(pair[1]))
        if len(pair) != 2:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{what} must be a pair of numbers (lo, hi), got {pair!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{what} must be finite, got ({lo}, {hi})")
    if not hi > lo:
        raise ValueError(f"{what} is empty or inverted: ({lo}, {hi}); need lo < hi")
    _check_scale((lo, hi), f"{what} ({lo}, {hi})")
    return lo, hi


def _check_map(domain, corners):
    """The affine map ``x = origin + basis @ u`` into input space: its origin, its
    directions and the images of the domain's ``corners`` (in ``u``) finite and in scale."""
    what = f"the {type(domain).__name__.lower()}"
    _check_scale(domain.origin, f"{what}'s origin")
    _check_scale(domain.basis, f"{what}'s directions")
    with np.errstate(over="ignore", invalid="ignore"):
        x = domain.to_input(np.asarray(corners, dtype=np.float64))
    _check_scale(x, f"{what} in input space")


@dataclass
class Domain:
    """Base: ``x = origin + basis @ u`` for ``u`` in the domain's own coordinates."""

    origin: np.ndarray       # (input_dim,)
    basis: np.ndarray        # (input_dim, dim)

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    @property
    def input_dim(self) -> int:
        return int(self.basis.shape[0])

    @property
    def is_identity(self) -> bool:
        """True when ``u`` is the input itself (no slice)."""
        return (self.basis.shape[0] == self.basis.shape[1]
                and np.array_equal(self.basis, np.eye(self.dim)) and not np.any(self.origin))

    @property
    def input_scale(self) -> float:
        """Factor from a measure in domain coordinates to the same set's measure
        in input space: the length of the direction of a 1D slice, the area
        ``sqrt(det(B^T B))`` of the parallelogram spanned by a 2D slice's
        directions ``B``; 1.0 when the domain is the input itself."""
        B = self.basis
        if self.dim == 1:
            return float(np.linalg.norm(B[:, 0]))
        return float(np.sqrt(abs(np.linalg.det(B.T @ B))))

    @property
    def measure_input(self) -> float:
        """The domain's length or area in input-space units
        (``measure * input_scale``; see :attr:`measure`, in domain units)."""
        return self.measure * self.input_scale

    def to_input(self, u):
        """Map domain coordinates ``u`` (``(n, dim)`` or ``(n,)`` in 1D) to input space."""
        u = np.asarray(u, dtype=np.float64)
        if self.dim == 1 and u.ndim == 1:
            u = u[:, None]
        return self.origin + u @ self.basis.T


class Interval(Domain):
    """``[lo, hi]`` of a 1-input network (or of the parameter of a :class:`Segment`)."""

    def __init__(self, lo, hi, origin=None, basis=None):
        self.lo, self.hi = _finite_pair((lo, hi), "the interval")
        _check_measure(self.hi - self.lo, f"the interval's length ({self.lo}, {self.hi})")
        super().__init__(np.zeros(1) if origin is None else np.asarray(origin, float),
                         np.ones((1, 1)) if basis is None else np.asarray(basis, float))
        _check_map(self, [self.lo, self.hi])

    @property
    def bounds(self):
        return (self.lo, self.hi)

    @property
    def measure(self) -> float:
        """Length in domain coordinates (for a :class:`Segment`, of its parameter
        range; :attr:`measure_input` is the length in input space)."""
        return self.hi - self.lo

    def __repr__(self):
        return f"Interval({self.lo}, {self.hi})"


class Segment(Interval):
    """The segment from ``p0`` to ``p1`` in input space; parameter ``t`` in ``[0, 1]``."""

    def __init__(self, p0, p1):
        p0 = np.asarray(p0, dtype=np.float64).ravel()
        p1 = np.asarray(p1, dtype=np.float64).ravel()
        if p0.shape != p1.shape:
            raise ValueError(f"segment end points differ in dimension: {p0.shape} and {p1.shape}")
        if not (np.all(np.isfinite(p0)) and np.all(np.isfinite(p1))):
            raise ValueError("segment end points must be finite")
        _check_scale(np.concatenate([p0, p1]), "the segment's end points")
        if np.array_equal(p0, p1):
            raise ValueError("the segment is empty: its two end points are equal")
        self.p0, self.p1 = p0, p1
        super().__init__(0.0, 1.0, origin=p0, basis=(p1 - p0)[:, None])

    def __repr__(self):
        return f"Segment({self.p0.tolist()}, {self.p1.tolist()})"


class Box(Domain):
    """``[x0, x1] x [y0, y1]`` in the domain's coordinates (a 2-input network's input,
    or the ``(u, v)`` box of a :class:`Plane`)."""

    def __init__(self, xr, yr, origin=None, basis=None):
        self.xr = _finite_pair(xr, "the box's x range")
        self.yr = _finite_pair(yr, "the box's y range")
        _check_measure((self.xr[1] - self.xr[0]) * (self.yr[1] - self.yr[0]),
                       f"the box's area {self.xr} x {self.yr}")
        super().__init__(np.zeros(2) if origin is None else np.asarray(origin, float),
                         np.eye(2) if basis is None else np.asarray(basis, float))
        _check_map(self, self.convex_pieces()[0])

    @property
    def bounds(self):
        return (self.xr[0], self.yr[0], self.xr[1], self.yr[1])

    @property
    def measure(self) -> float:
        """Area in domain coordinates (for a :class:`Plane`, of its parameter
        box; :attr:`measure_input` is the area in input space)."""
        return (self.xr[1] - self.xr[0]) * (self.yr[1] - self.yr[0])

    def convex_pieces(self):
        """The domain as a list of convex CCW polygons ``(m, 2)``."""
        (x0, x1), (y0, y1) = self.xr, self.yr
        return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)]

    def __repr__(self):
        return f"Box({self.xr}, {self.yr})"


class Plane(Box):
    """A 2D slice of the input space: ``x = origin + u d1 + v d2`` for ``(u, v)`` in a box.

    Give either ``points=(a, b, c)`` (origin ``a``, directions ``b - a`` and
    ``c - a``; the default box ``[0, 1]^2`` is the parallelogram spanned by
    the three points) or ``origin`` and ``directions=(d1, d2)``.
    """

    def __init__(self, points=None, origin=None, directions=None, box=((0.0, 1.0), (0.0, 1.0))):
        if points is not None:
            if origin is not None or directions is not None:
                raise ValueError("give either points or origin and directions, not both")
            pts = np.asarray(points, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[0] != 3:
                raise ValueError(f"points must be three points (3, input_dim), got shape {pts.shape}")
            origin, directions = pts[0], (pts[1] - pts[0], pts[2] - pts[0])
        if origin is None or directions is None:
            raise ValueError("a Plane needs points=(a, b, c) or origin= and directions=(d1, d2)")
        origin = np.asarray(origin, dtype=np.float64).ravel()
        D = np.asarray(directions, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != 2 or D.shape[1] != origin.shape[0]:
            raise ValueError(f"directions must be two vectors of dimension {origin.shape[0]}, "
                             f"got shape {D.shape}")
        if not (np.all(np.isfinite(origin)) and np.all(np.isfinite(D))):
            raise ValueError("the plane's origin and directions must be finite")
        _check_scale(origin, "the plane's origin")
        _check_scale(D, "the plane's directions")
        if np.linalg.matrix_rank(D) < 2:
            raise ValueError("the plane's two directions are parallel (or zero); "
                             "they must span a plane")
        super().__init__(box[0], box[1], origin=origin, basis=D.T)

    def __repr__(self):
        return f"Plane(origin={self.origin.tolist()}, box=({self.xr}, {self.yr}))"


class PolygonDomain(Domain):
    """A shapely polygon (convex or not, with holes) in the plane of a 2-input network."""

    def __init__(self, polygon, origin=None, basis=None):
        import shapely

        if not isinstance(polygon, shapely.Polygon):
            raise ValueError(f"expected a shapely Polygon, got {type(polygon).__name__}")
        if polygon.is_empty or not polygon.is_valid or polygon.area <= 0:
            raise ValueError("the polygon domain must be a valid polygon with positive area "
                             f"(shapely.is_valid_reason: {shapely.is_valid_reason(polygon)})")
        coords = np.concatenate([np.asarray(ring.coords)
                                 for ring in (polygon.exterior, *polygon.interiors)])
        _check_scale(coords, "the polygon's coordinates")
        _check_measure(polygon.area, "the polygon's area")
        self.polygon = shapely.normalize(polygon)
        super().__init__(np.zeros(2) if origin is None else np.asarray(origin, float),
                         np.eye(2) if basis is None else np.asarray(basis, float))
        _check_map(self, coords)

    @property
    def bounds(self):
        return tuple(self.polygon.bounds)

    @property
    def measure(self) -> float:
        return float(self.polygon.area)

    @property
    def is_convex(self) -> bool:
        p = self.polygon
        return len(p.interiors) == 0 and abs(p.convex_hull.area - p.area) <= 1e-12 * p.area

    def convex_pieces(self):
        """The polygon as convex CCW pieces: itself when convex, else a
        constrained Delaunay triangulation (pieces are merged back per region)."""
        import shapely

        if len(self.polygon.interiors):
            raise ValueError("polygon domains with holes are not supported yet; split the "
                             "domain into simple polygons and partition each")
        if self.is_convex:
            ring = np.asarray(shapely.orient_polygons(self.polygon).exterior.coords)[:-1]
            # drop collinear points so that every vertex is a corner
            keep = []
            m = len(ring)
            for i in range(m):
                a, b, c = ring[i - 1], ring[i], ring[(i + 1) % m]
                if abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) > 0:
                    keep.append(i)
            return [ring[keep]]
        tris = shapely.constrained_delaunay_triangles(self.polygon)
        out = []
        for t in shapely.get_parts(tris):
            ring = np.asarray(shapely.orient_polygons(t).exterior.coords)[:-1]
            out.append(ring)
        return out

    def __repr__(self):
        return f"PolygonDomain({self.polygon.wkt[:60]}...)"


def as_domain(domain, input_dim=None) -> Domain:
    """Read a domain description; check it against the network's input dimension."""
    import shapely

    if isinstance(domain, Domain):
        d = domain
    elif isinstance(domain, shapely.Polygon):
        d = PolygonDomain(domain)
    elif isinstance(domain, shapely.geometry.base.BaseGeometry):
        raise ValueError(f"a {domain.geom_type} is not a domain; accepted: a shapely Polygon, "
                         "(lo, hi), ((x0, x1), (y0, y1)), regions.Segment, regions.Plane")
    else:
        try:
            arr = np.asarray(domain, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"cannot read a domain from {domain!r}; accepted: (lo, hi), "
                             "((x0, x1), (y0, y1)), a shapely Polygon, regions.Segment, "
                             "regions.Plane") from None
        if arr.shape == (2,):
            d = Interval(arr[0], arr[1])
        elif arr.shape == (2, 2):
            d = Box(arr[0], arr[1])
        else:
            raise ValueError(f"cannot read a domain from an array shaped {arr.shape}; "
                             "use (lo, hi) for 1D or ((x0, x1), (y0, y1)) for 2D")
    if input_dim is not None and d.input_dim != input_dim:
        hint = (" (use regions.Segment or regions.Plane to slice a higher-dimensional input)"
                if d.input_dim < input_dim else "")
        raise ValueError(f"the domain lives in {d.input_dim}-dimensional input space but the "
                         f"network takes {input_dim} inputs{hint}")
    return d
