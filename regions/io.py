"""Persistence: a partition to one ``.npz`` file and back, and 2D GeoJSON export.

The ``.npz`` holds plain arrays only (no pickles), so it opens with
``np.load(path)`` anywhere. :func:`load` treats the file as untrusted input: it
maps the ``class`` field against a fixed table of the three partition classes
(nothing the file names is imported or called), and checks every array
before any kernel sees it (see "What load checks" below). A file that fails a
check raises ``ValueError`` naming the file and the field.

Keys (format version 2)
-----------------------
==========================  ============================================================
key                         content
==========================  ============================================================
``format``, ``version``     ``"regions.partition"`` and the format version (1, or 2 when
                            the file holds ``net.carried`` or ``net.max_trees``)
``class``                   one of :data:`CLASSES`, e.g. ``"regions.partition2d:Partition2D"``
``dim``                     1 or 2, the class's dimension
``net.n_layers``            number of affine layers ``L >= 1`` (hidden + output)
``net.W{l}``, ``net.b{l}``  weights ``(out, in)`` and biases of layer ``l``, float64
``net.slopes``              ``(L - 1,)`` activation negative slope after each hidden layer
``net.names``               layer names (strings; optional)
``net.carried``             a traced model's carried units (:attr:`regions.Network.linear`):
                            one uint8 flag per hidden unit, layer-major, 1 = carried
                            (version 2; present only when some unit is carried)
``net.max_trees``           ``(t, 3)`` int64 comparisons of its maxes over ``k > 2``
                            values (:attr:`regions.Network.max_trees`; version 2)
``enc.kinds``/``enc.omegas`` the encoding's feature table (encoded partitions only)
``domain.kind``             ``interval``, ``segment``, ``box``, ``plane`` or ``polygon``
``domain.*``                ``origin``, ``basis`` and the kind's parameters: ``bounds``
                            (interval, box, plane), ``p0``/``p1`` (segment), ``wkb``
                            (polygon, shapely WKB bytes as uint8)
``packed_patterns``         ``(n, words)`` uint64 activation bits
``measure``, ``A``, ``c``   lengths / areas and the per-region affine map, float64
``stats``                   the engine's statistics as JSON text (an object)
``geom.<name>``             the class's primary geometry arrays (:data:`CLASSES`):
                            1D ``points``; encoded 1D also ``kinds``, ``alpha``,
                            ``beta``; 2D ``vertices``, ``face_offsets``,
                            ``face_vertices``, ``face_edges``, ``edges`` and
                            (optional) ``vertex_values``
==========================  ============================================================

A file without the two version 2 fields is written as version 1, the format
of earlier releases, which read it as before; a file with them says version 2.
Files written before this table existed also carry ``geom.breakpoints``,
``geom.intervals``, ``geom.pattern_id`` (1D) and ``enc.class``; they are read,
checked against what the primary arrays give (exactly), and not written any more.

What load checks
----------------
Every array: its dtype (float64, int64, uint64, uint8 or a unicode string, native
byte order; never object), shape and finiteness. Then: the network's layer shapes
chain, ``net.n_layers`` matches the ``net.W*``/``net.b*`` keys, the slopes are one
per hidden layer, the carried flags are 0/1 and one per hidden unit, the max trees
are valid trees over the pattern's bits (each comparison's children earlier rows,
used once, each tree's inputs numbered ``-1 .. -k``) and the stored patterns are
canonical for them, an encoding's table matches the first layer's inputs; the domain
is well formed and matches the network's input; the packed patterns have
``ceil(n_hidden / 64)`` words and no bit beyond ``n_hidden``; every array agrees on
the number of regions; 1D points increase strictly from the domain's ``lo`` to its
``hi``; 2D offsets start at 0, grow by at least 3 and end at the slot count, and
every vertex and edge index is in range, every edge joins the two vertices of its
slot and is used at least once and at most once per direction; vertices lie in the domain's bounding box; measures are non-negative and
agree with the geometry (interval lengths, shoelace areas) and add up to the
domain's measure. Last, the partition must belong to its network: a float64
forward pass at every vertex (point) must reproduce the stored output maps (and
2D vertex values), and every region's stored pattern must agree with the sign of
each kink unit at the region's vertices (but a max's comparisons off its winner's
path, which the pattern sets to 0), both to a tolerance of
``CHECK_RTOL`` times the magnitudes involved. Unknown keys are refused.

Examples
--------
>>> import os, tempfile
>>> import numpy as np, regions
>>> net = [(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))]
>>> p = regions.partition(net, ((-1, 1), (-1, 1)), progress=False)
>>> with tempfile.TemporaryDirectory() as folder:
...     path = save(p, os.path.join(folder, "p.npz"))
...     q = load(path)
>>> type(q).__name__, len(q) == len(p), bool(np.array_equal(q.measure, p.measure))
('Partition2D', True, True)
>>> q.locate([[0.5, 0.5], [-0.5, 0.5]]).tolist() == p.locate([[0.5, 0.5], [-0.5, 0.5]]).tolist()
True
"""
from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .domain import Box, Interval, Plane, PolygonDomain, Segment
from .encoded import MERGE, EncodedPartition1D, EncodedPartition2D
from .network import Network
from .partition import pack_patterns, unpack_patterns
from .partition1d import Partition1D
from .partition2d import Partition2D

__all__ = ["save", "load", "load_network", "to_geojson", "pattern_hex", "FORMAT", "VERSION",
           "CLASSES", "CHECK_RTOL"]

FORMAT = "regions.partition"
VERSION = 2

# the fields of version 2 (a traced model's carried units and max trees); a file
# without them is written as version 1, which older readers read
_VERSION2_KEYS = ("net.carried", "net.max_trees")

# relative tolerance of the consistency checks (network against the stored maps
# and patterns, measures against the geometry): far above float64 rounding
# (about 1e-16 per operation), far below any real disagreement
CHECK_RTOL = 1e-8


@dataclass(frozen=True)
class _Layout:
    """How one partition class is stored: its primary geometry arrays (the ones its
    constructor takes), those that may be absent, and what older files also carry."""

    cls: type
    dim: int
    encoded: bool
    geometry: tuple
    optional: tuple = ()
    legacy: tuple = ()

    @property
    def domain_kinds(self):
        if self.dim == 1:
            return ("interval", "segment")
        # the encoded 2D engine takes boxes and polygons of the input itself, no slices
        return ("box", "polygon") if self.encoded else ("box", "plane", "polygon")


CLASSES = {
    "regions.partition1d:Partition1D": _Layout(Partition1D, 1, False, ("points",),
                                               legacy=("breakpoints", "intervals")),
    "regions.partition2d:Partition2D": _Layout(
        Partition2D, 2, False, ("vertices", "face_offsets", "face_vertices", "face_edges", "edges"),
        optional=("vertex_values",)),
    "regions.encoded:EncodedPartition1D": _Layout(
        EncodedPartition1D, 1, True, ("points", "kinds", "alpha", "beta"),
        legacy=("breakpoints", "intervals", "pattern_id")),
    # curved faces: the WKB of each face's polygon (holes allowed) back to back,
    # face r at bytes wkb_offsets[r] : wkb_offsets[r + 1], and their tolerance
    "regions.encoded:EncodedPartition2D": _Layout(
        EncodedPartition2D, 2, True, ("wkb", "wkb_offsets", "tol")),
}
"""The ``class`` strings :func:`load` accepts, and how each class is stored."""

_DOMAIN_KEYS = {"interval": ("bounds",), "segment": ("p0", "p1"), "box": ("bounds",),
                "plane": ("bounds",), "polygon": ("wkb",)}


def _class_name(partition):
    for name, layout in CLASSES.items():
        if type(partition) is layout.cls:
            return name
    raise ValueError(f"save writes {', '.join(n.split(':')[1] for n in CLASSES)}; "
                     f"got {type(partition).__name__}")


# ----------------------------------------------------------------------------- save
def _network_arrays(network):
    out = {"net.n_layers": np.int64(len(network.weights)),
           "net.slopes": np.asarray(network.slopes, dtype=np.float64),
           "net.names": np.asarray([str(n) for n in (network.names or [])], dtype=str)}
    for l, (W, b) in enumerate(zip(network.weights, network.biases)):
        out[f"net.W{l}"] = np.asarray(W, dtype=np.float64)
        out[f"net.b{l}"] = np.asarray(b, dtype=np.float64)
    if network.n_carried:
        out["net.carried"] = np.concatenate(network.linear).astype(np.uint8)
    if network.max_trees is not None:
        out["net.max_trees"] = np.asarray(network.max_trees, dtype=np.int64)
    if network.encoding is not None:
        kinds, omegas = network.encoding.feature_spec()
        out["enc.kinds"] = np.asarray(kinds, dtype=np.int64)
        out["enc.omegas"] = np.asarray(omegas, dtype=np.float64)
    return out


def _domain_arrays(domain):
    out = {"domain.origin": np.asarray(domain.origin, dtype=np.float64),
           "domain.basis": np.asarray(domain.basis, dtype=np.float64)}
    if isinstance(domain, Segment):
        out.update({"domain.kind": np.asarray("segment"), "domain.p0": domain.p0,
                    "domain.p1": domain.p1})
    elif isinstance(domain, Interval):
        out.update({"domain.kind": np.asarray("interval"),
                    "domain.bounds": np.array([domain.lo, domain.hi])})
    elif isinstance(domain, (Plane, Box)):
        out.update({"domain.kind": np.asarray("plane" if isinstance(domain, Plane) else "box"),
                    "domain.bounds": np.array([domain.xr, domain.yr], dtype=np.float64)})
    elif isinstance(domain, PolygonDomain):
        import shapely

        out.update({"domain.kind": np.asarray("polygon"),
                    "domain.wkb": np.frombuffer(shapely.to_wkb(domain.polygon), dtype=np.uint8)})
    else:
        raise ValueError(f"cannot save a partition over a {type(domain).__name__} domain; "
                         "savable domains are Interval, Segment, Box, Plane and PolygonDomain")
    return out


def _geometry_arrays(partition, layout):
    if layout.cls is EncodedPartition2D:
        import shapely

        blobs = [shapely.to_wkb(g) for g in partition.polygons()]
        offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
        return {"geom.wkb": np.frombuffer(b"".join(blobs), dtype=np.uint8),
                "geom.wkb_offsets": offsets, "geom.tol": np.float64(partition.tol)}
    out = {}
    for name in layout.geometry + layout.optional:
        value = getattr(partition, name)
        if value is not None:
            out[f"geom.{name}"] = np.asarray(value)
    return out


def save(partition, path):
    """Write ``partition`` to ``path`` as an uncompressed ``.npz`` (the suffix is added
    if missing, as :func:`numpy.savez` does). Returns the path written.

    Everything :func:`load` needs is stored as arrays: the network, the encoding's
    feature table, the domain, packed patterns, measures, the affine maps and the
    primary geometry arrays of the partition's class (see :data:`CLASSES`). The
    file is written to a temporary file in the same folder and renamed over
    ``path`` when complete, so ``path`` never holds a partial file.
    """
    name = _class_name(partition)
    layout = CLASSES[name]
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    A, c = partition.affine
    arrays = {
        "format": np.asarray(FORMAT),
        "version": np.int64(1),        # 2 below when a version 2 field is written
        "class": np.asarray(name),
        "dim": np.int64(layout.dim),
        "packed_patterns": np.asarray(partition.packed_patterns, dtype=np.uint64),
        "measure": np.asarray(partition.measure, dtype=np.float64),
        "A": np.asarray(A, dtype=np.float64),
        "c": np.asarray(c, dtype=np.float64),
        "stats": np.asarray(json.dumps(_jsonable(partition.stats))),
    }
    arrays.update(_network_arrays(partition.network))
    if any(k in arrays for k in _VERSION2_KEYS):
        arrays["version"] = np.int64(2)    # a file version 1 readers would misread
    arrays.update(_domain_arrays(partition.domain))
    arrays.update(_geometry_arrays(partition, layout))
    _write_atomically(path, arrays)
    return path


def _write_atomically(path, arrays):
    """``np.savez`` into a new temporary file beside ``path``, then ``os.replace``."""
    _replace_atomically(path, lambda f: np.savez(f, **arrays))


def _replace_atomically(path, write):
    """``write(f)`` into a new temporary file (binary) beside ``path``, then ``os.replace``
    it over ``path``: ``path`` never holds a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


# ----------------------------------------------------------------------------- reading
_DTYPES = {"float64": np.dtype(np.float64), "int64": np.dtype(np.int64),
           "uint64": np.dtype(np.uint64), "uint8": np.dtype(np.uint8)}


class _File:
    """An opened partition file: typed, checked access to its arrays by key, and the
    ``ValueError`` that names the file and the field."""

    def __init__(self, z, where):
        self.z, self.where = z, where
        self.keys = set(z.files)

    def fail(self, key, message):
        raise ValueError(f"{self.where}: field {key!r}: {message}")

    def has(self, key):
        return key in self.keys

    def array(self, key, dtype, ndim, finite=True):
        """The array under ``key``, C-contiguous, with exactly this dtype and ndim."""
        a = self._read(key)
        if a.dtype != _DTYPES[dtype]:
            self.fail(key, f"dtype must be {dtype} (native byte order), got {a.dtype.str}")
        if a.ndim != ndim:
            self.fail(key, f"must have {ndim} dimension(s), got shape {a.shape}")
        if finite and a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            self.fail(key, "holds NaN or infinite values; all values must be finite")
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def shaped(self, key, dtype, shape, why=""):
        """:meth:`array` with an exact shape (``None`` entries are free); ``why`` says
        where the expected sizes come from."""
        a = self.array(key, dtype, len(shape))
        if any(want is not None and got != want for got, want in zip(a.shape, shape)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) \
                + ("," if len(shape) == 1 else "") + ")"
            self.fail(key, f"shape must be {want}{why}, got {a.shape}")
        return a

    def integer(self, key):
        a = self.array(key, "int64", 0)
        return int(a)

    def _read(self, key):
        if key not in self.keys:
            raise ValueError(f"{self.where}: the file lacks the field {key!r} "
                             "(not a complete regions partition file)")
        try:
            return self.z[key]
        except Exception as e:  # object arrays (allow_pickle=False), a damaged member ...
            self.fail(key, f"cannot be read as a plain array ({type(e).__name__}: {e})")

    def strings(self, key):
        """A 1-D array of unicode strings, as a list."""
        a = self._read(key)
        if a.dtype.kind != "U" or a.ndim != 1:
            self.fail(key, f"must be a 1-D array of unicode strings, got dtype {a.dtype.str} "
                           f"shape {a.shape}")
        return [str(s) for s in a]

    def text(self, key):
        a = self._read(key)
        if a.dtype.kind != "U" or a.ndim != 0:
            self.fail(key, f"must be a unicode string scalar, got dtype {a.dtype.str} "
                           f"shape {a.shape}")
        return str(a)


def _open(path):
    path = Path(path)
    where = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no such file: {where}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError ...
        raise ValueError(f"{where} is not a regions partition file (.npz written by "
                         f"regions.save): {type(e).__name__}: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{where} holds a single array, not a regions partition "
                         "file (.npz written by regions.save)")
    f = _File(z, where)
    try:
        _refuse_zip_bombs(z, path, where)
        if not f.has("format") or _format_of(f) != FORMAT:
            raise ValueError(f"{where} is not a regions partition file: it has no "
                             f"format={FORMAT!r} entry (keys: {sorted(z.files)[:8]})")
        version = f.integer("version")
        if version > VERSION:
            raise ValueError(f"{where} is format version {version}; this regions reads "
                             f"versions up to {VERSION} (upgrade regions)")
        if version < 1:
            f.fail("version", f"must be a format version from 1 to {VERSION}, got {version}")
    except BaseException:
        z.close()
        raise
    return f


# the arrays of a file may take at most this many times its size on disk (or 64 MB):
# files from save are stored uncompressed (ratio 1); a compressed member that
# expands beyond this is refused before it is read
_EXPANSION = 100


def _refuse_zip_bombs(z, path, where):
    declared = sum(info.file_size for info in z.zip.infolist())
    allowed = max(64 << 20, _EXPANSION * path.stat().st_size)
    if declared > allowed:
        raise ValueError(f"{where}: its arrays would expand to {declared} bytes, more than "
                         f"{_EXPANSION} times the file's size; refused as a decompression bomb")


def _format_of(f):
    try:
        return f.text("format")
    except ValueError:
        return None


def load_network(path):
    """Only the network stored in a partition file, as a :class:`regions.Network`
    (checked as :func:`load` checks it)."""
    f = _open(path)
    with f.z:
        layout = _layout_of(f)
        return _read_network(f, layout)


def _layout_of(f):
    name = f.text("class")
    if name not in CLASSES:
        f.fail("class", f"{name!r} is not a partition class this version reads; "
                        f"accepted: {', '.join(CLASSES)}")
    layout = CLASSES[name]
    dim = f.integer("dim")
    if dim != layout.dim:
        f.fail("dim", f"is {dim} but class {name} is {layout.dim}D")
    return layout


def _read_network(f, layout):
    n_layers = f.integer("net.n_layers")
    present = sorted(k for k in f.keys if k.startswith(("net.W", "net.b")))
    if n_layers < 1:
        f.fail("net.n_layers", f"must be >= 1 (the output layer counts), got {n_layers}")
    # at most as many layers as the file has keys: the expected set stays small
    expected = {f"net.{p}{l}" for l in range(min(n_layers, len(present) // 2 + 1)) for p in "Wb"}
    if 2 * n_layers != len(present) or set(present) != expected:
        extra, missing = sorted(set(present) - expected), sorted(expected - set(present))
        f.fail("net.n_layers", f"is {n_layers} but the file has layer keys {present[:12]}"
                               + (f"; missing {missing[:6]}" if missing else "")
                               + (f"; unexpected {extra[:6]}" if extra else ""))
    weights, biases = [], []
    for l in range(n_layers):
        W = f.array(f"net.W{l}", "float64", 2)
        b = f.array(f"net.b{l}", "float64", 1)
        if W.shape[0] < 1 or W.shape[1] < 1:
            f.fail(f"net.W{l}", f"must have at least one row and column, got shape {W.shape}")
        if l and W.shape[1] != weights[-1].shape[0]:
            f.fail(f"net.W{l}", f"takes {W.shape[1]} inputs but layer {l - 1} has "
                                f"{weights[-1].shape[0]} outputs (shape {W.shape})")
        if b.shape != (W.shape[0],):
            f.fail(f"net.b{l}", f"shape must be ({W.shape[0]},) to match net.W{l}, got {b.shape}")
        weights.append(W)
        biases.append(b)
    slopes = f.shaped("net.slopes", "float64", (n_layers - 1,))
    names = []
    if f.has("net.names"):
        names = f.strings("net.names")
        if len(names) not in (0, n_layers):
            f.fail("net.names", f"must hold 0 or {n_layers} names (one per layer), "
                                f"got {len(names)}")
    encoding = _read_encoding(f, layout, weights[0])
    linear, trees = _read_traced(f, weights)
    try:
        return Network(weights, biases, slopes, encoding, names, linear, trees)
    except ValueError as e:   # the max trees' own checks (positions, links, inputs)
        f.fail("net.max_trees", str(e))


def _read_traced(f, weights):
    """The carried-unit masks and max trees of a traced model (version 2 fields)."""
    present = [k for k in _VERSION2_KEYS if f.has(k)]
    if present and f.integer("version") < 2:
        f.fail(present[0], "is a format version 2 field in a version 1 file")
    widths = [W.shape[0] for W in weights[:-1]]
    linear = trees = None
    if f.has("net.carried"):
        flags = f.shaped("net.carried", "uint8", (sum(widths),), " (one flag per hidden unit)")
        if np.any(flags > 1):
            f.fail("net.carried", "flags must be 0 (a kink unit) or 1 (a carried unit)")
        if not flags.any():
            f.fail("net.carried", "marks no unit; a network without carried units has no "
                                  "such field")
        linear = np.split(flags.astype(bool), np.cumsum(widths)[:-1])
    if f.has("net.max_trees"):
        trees = f.array("net.max_trees", "int64", 2)
        if trees.shape[0] < 2 or trees.shape[1] != 3:
            f.fail("net.max_trees", f"shape must be (t >= 2, 3) (a max over k > 2 values has "
                                    f"k - 1 >= 2 comparisons), got {trees.shape}")
    return linear, trees


def _read_encoding(f, layout, W0):
    has = [k for k in ("enc.kinds", "enc.omegas") if f.has(k)]
    if not layout.encoded:
        if has:
            f.fail(has[0], "a raw-coordinate partition has no encoding table")
        return None
    if len(has) < 2:
        missing = sorted({"enc.kinds", "enc.omegas"} - set(has))
        raise ValueError(f"{f.where}: the encoding is incomplete (missing {missing[0]!r})")
    kinds = f.array("enc.kinds", "int64", 1)
    omegas = f.array("enc.omegas", "float64", 2)
    if kinds.shape[0] < 1 or omegas.shape[1] < 1 or omegas.shape[0] != kinds.shape[0]:
        f.fail("enc.omegas", f"shape must be ({kinds.shape[0]}, d >= 1) to match enc.kinds, "
                             f"got {omegas.shape}")
    if not np.all(np.isin(kinds, (0, 1, 2))):
        f.fail("enc.kinds", "values must be 0 (raw), 1 (sin) or 2 (cos)")
    if W0.shape[1] != kinds.shape[0]:
        f.fail("net.W0", f"takes {W0.shape[1]} inputs but the encoding has {kinds.shape[0]} "
                         "features")
    if f.has("enc.class"):
        f.text("enc.class")     # written by older versions; informative only, never used
    from .encoding import Encoding  # imports torch, which only encoded files need

    return Encoding.from_spec(kinds, omegas)


def _read_domain(f, layout, input_dim):
    kind = f.text("domain.kind")
    if kind not in layout.domain_kinds:
        f.fail("domain.kind", f"{kind!r} is not a domain of a {layout.dim}D partition; "
                              f"accepted: {', '.join(layout.domain_kinds)}")
    origin = f.array("domain.origin", "float64", 1)
    basis = f.shaped("domain.basis", "float64", (origin.shape[0], layout.dim))
    if origin.shape[0] != input_dim:
        key = "enc.omegas" if layout.encoded else "net.W0"
        f.fail(key, f"the network takes {input_dim}-dimensional input but the domain lives "
                    f"in {origin.shape[0]} dimensions (domain.origin {origin.shape})")
    if np.linalg.matrix_rank(basis) < layout.dim:
        f.fail("domain.basis", f"its {layout.dim} column(s) must be independent")
    try:
        if kind == "interval":
            lo, hi = f.shaped("domain.bounds", "float64", (2,))
            return Interval(lo, hi, origin=origin, basis=basis)
        if kind == "segment":
            p0 = f.shaped("domain.p0", "float64", (input_dim,))
            p1 = f.shaped("domain.p1", "float64", (input_dim,))
            domain = Segment(p0, p1)
            if not (np.array_equal(domain.origin, origin) and np.array_equal(domain.basis, basis)):
                f.fail("domain.basis", "a segment's origin and basis must be p0 and p1 - p0")
            return domain
        if kind in ("box", "plane"):
            xr, yr = f.shaped("domain.bounds", "float64", (2, 2))
            if kind == "box":
                return Box(tuple(xr), tuple(yr), origin=origin, basis=basis)
            return Plane(origin=origin, directions=basis.T, box=(tuple(xr), tuple(yr)))
        return _read_polygon(f, origin, basis)
    except ValueError as e:
        if str(e).startswith(f.where):
            raise
        key = "domain.wkb" if kind == "polygon" else \
            "domain.p0" if kind == "segment" else "domain.bounds"
        f.fail(key, str(e))


def _read_polygon(f, origin, basis):
    import shapely

    wkb = f.array("domain.wkb", "uint8", 1)
    _check_polygon_wkb(f, wkb.tobytes(), "domain.wkb")
    try:
        poly = shapely.from_wkb(wkb.tobytes())
    except Exception as e:  # shapely.errors.GEOSException and friends
        f.fail("domain.wkb", f"is not a WKB geometry ({type(e).__name__}: {e})")
    if not isinstance(poly, shapely.Polygon):
        f.fail("domain.wkb", f"must be a Polygon, got {poly.geom_type}")
    if len(poly.interiors):
        f.fail("domain.wkb", "the polygon has holes; partitions of polygons with holes "
                             "are not computed, so no file holds one")
    return PolygonDomain(poly, origin=origin, basis=basis)


def _check_polygon_wkb(f, wkb, key, what="the polygon"):
    """The WKB of a 2D polygon, walked before the parser sees it: its byte order and
    type, and ring sizes that add up to exactly its length (a crafted point count
    would otherwise make the parser allocate without bound)."""
    if len(wkb) < 9 or wkb[0] not in (0, 1):
        f.fail(key, f"{what} is not the WKB of a polygon (bad header)")
    order = "<" if wkb[0] == 1 else ">"
    kind, n_rings = np.frombuffer(wkb, dtype=f"{order}u4", count=2, offset=1)
    if kind != 3:
        f.fail(key, f"{what} must be a 2D Polygon (WKB type 3), got WKB type {int(kind)}")
    pos = 9
    for _ in range(int(n_rings)):
        if pos + 4 > len(wkb):
            f.fail(key, f"{what} is truncated (fewer rings than it declares)")
        n_points = int(np.frombuffer(wkb, dtype=f"{order}u4", count=1, offset=pos)[0])
        pos += 4 + 16 * n_points
        if pos > len(wkb):
            f.fail(key, f"{what} is truncated (a ring declares more points than it holds)")
    if pos != len(wkb):
        f.fail(key, f"{what} has {len(wkb) - pos} bytes after the polygon")


def _read_common(f, layout, network):
    n_hidden = network.n_hidden
    packed = f.array("packed_patterns", "uint64", 2)
    n = packed.shape[0]
    words = (n_hidden + 63) // 64
    if n < 1:
        f.fail("packed_patterns", "a partition has at least one region, got 0 rows")
    if packed.shape[1] != words and not (n_hidden == 0 and packed.shape[1] == 1):
        f.fail("packed_patterns", f"must have ceil({n_hidden} / 64) = {words} words per row "
                                  f"for {n_hidden} hidden neurons, got {packed.shape[1]}")
    spare = packed.shape[1] * 64 - n_hidden
    if spare and np.any(packed[:, -1] >> np.uint64(64 - spare)):
        f.fail("packed_patterns", f"has bits set beyond the {n_hidden} hidden neurons")
    if network.max_trees is not None:
        moved = np.flatnonzero(np.any(network.canonical_packed(packed) != packed, axis=1))
        if moved.size:
            f.fail("packed_patterns", f"the pattern of region {int(moved[0])} sets a comparison "
                                      "of a max that is off its winner's path (stored patterns "
                                      "are canonical, see Network.canonical)")
    regions = f" ({n} regions, as packed_patterns has)"
    measure = f.shaped("measure", "float64", (n,), regions)
    if np.any(measure < 0):
        f.fail("measure", "holds negative values")
    features = network.weights[0].shape[1] if layout.encoded else layout.dim
    n_out = network.output_dim
    A = f.shaped("A", "float64", (n, n_out, features), regions)
    c = f.shaped("c", "float64", (n, n_out), regions)
    text = f.text("stats")
    try:
        stats = json.loads(text)
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError, absurd nesting
        f.fail("stats", f"is not JSON text ({type(e).__name__}: {e})")
    if not isinstance(stats, dict):
        f.fail("stats", f"must be a JSON object, got {type(stats).__name__}")
    if not isinstance(stats.get("convex", True), bool):
        f.fail("stats", f"'convex' must be true or false, got {stats['convex']!r}")
    if stats.get("convex", True) is False and f.text("domain.kind") != "polygon":
        f.fail("stats", "only partitions of polygon domains can have non-convex regions")
    return dict(packed_patterns=packed, measure=measure, A=A, c=c, stats=stats)


def _read_points(f, domain, n):
    points = f.shaped("geom.points", "float64", (n + 1,),
                      f" ({n} pieces, as packed_patterns has)")
    if not np.all(np.diff(points) > 0):
        f.fail("geom.points", "must increase strictly")
    if points[0] != domain.lo or points[-1] != domain.hi:
        f.fail("geom.points", f"must run from the domain's lo = {domain.lo} to hi = {domain.hi}, "
                              f"got {points[0]} .. {points[-1]}")
    return points


def _read_line_features(f, network, domain):
    """``kinds``, ``alpha``, ``beta`` of an encoded partition: the encoding's table along
    the domain's line (phase ``alpha + beta u``), checked against the table."""
    kinds_enc, omegas = network.encoding.feature_spec()
    F = kinds_enc.shape[0]
    kinds = f.shaped("geom.kinds", "int64", (F,))
    if not np.array_equal(kinds, kinds_enc):
        f.fail("geom.kinds", "must equal enc.kinds")
    out = {"kinds": kinds}
    for key, vector in (("alpha", domain.origin), ("beta", domain.basis[:, 0])):
        value = f.shaped(f"geom.{key}", "float64", (F,))
        scale = np.abs(omegas) @ np.abs(vector)
        if np.any(np.abs(value - omegas @ vector) > CHECK_RTOL * scale):
            along = "origin" if key == "alpha" else "basis"
            f.fail(f"geom.{key}", "disagrees with the encoding's frequencies along the domain "
                                  f"(enc.omegas @ domain.{along})")
        out[key] = value
    return out


def _read_faces(f, domain, n, n_out):
    """The 2D CSR geometry, every index checked before a kernel sees it."""
    vertices = f.array("geom.vertices", "float64", 2)
    V = vertices.shape[0]
    if vertices.shape[1] != 2 or V < 3:
        f.fail("geom.vertices", f"shape must be (V >= 3, 2), got {vertices.shape}")
    offsets = f.shaped("geom.face_offsets", "int64", (n + 1,),
                       f" ({n} regions, as packed_patterns has)")
    face_vertices = f.array("geom.face_vertices", "int64", 1)
    S = face_vertices.shape[0]
    if offsets[0] != 0 or offsets[-1] != S:
        f.fail("geom.face_offsets", f"must start at 0 and end at len(geom.face_vertices) = {S}, "
                                    f"got {offsets[0]} .. {offsets[-1]}")
    if np.any(np.diff(offsets) < 3):
        f.fail("geom.face_offsets", "every face needs at least 3 vertices (offsets must grow "
                                    "by 3 or more)")
    if np.any((face_vertices < 0) | (face_vertices >= V)):
        f.fail("geom.face_vertices", f"indices must lie in [0, {V})")
    face_edges = f.shaped("geom.face_edges", "int64", (S,))
    edges = f.array("geom.edges", "int64", 2)
    E = edges.shape[0]
    if edges.shape[1] != 2:
        f.fail("geom.edges", f"shape must be (E, 2), got {edges.shape}")
    if np.any((edges < 0) | (edges >= V)) or np.any(edges[:, 0] == edges[:, 1]):
        f.fail("geom.edges", f"must join two different vertices with indices in [0, {V})")
    if np.any((face_edges < 0) | (face_edges >= E)):
        f.fail("geom.face_edges", f"indices must lie in [0, {E})")
    # slot s of a face runs from its vertex to the next one (cyclically) along face_edges[s]
    nxt = np.arange(1, S + 1)
    nxt[offsets[1:] - 1] = offsets[:-1]
    a, b = face_vertices, face_vertices[nxt]
    e = edges[face_edges]
    forward = (e[:, 0] == a) & (e[:, 1] == b)
    if not np.all(forward | ((e[:, 0] == b) & (e[:, 1] == a))):
        f.fail("geom.face_edges", "an edge does not join the two vertices of its slot")
    uses_forward = np.bincount(face_edges[forward], minlength=E)
    uses_backward = np.bincount(face_edges[~forward], minlength=E)
    if np.any(uses_forward > 1) or np.any(uses_backward > 1):
        f.fail("geom.face_edges", "an edge is traversed twice in the same direction (faces "
                                  "must be counter-clockwise and not overlap)")
    if np.any(uses_forward + uses_backward == 0):
        f.fail("geom.edges", "holds an edge that no face uses")
    lo_x, lo_y, hi_x, hi_y = domain.bounds
    slack = CHECK_RTOL * max(hi_x - lo_x, hi_y - lo_y)
    outside = ((vertices[:, 0] < lo_x - slack) | (vertices[:, 0] > hi_x + slack)
               | (vertices[:, 1] < lo_y - slack) | (vertices[:, 1] > hi_y + slack))
    if np.any(outside):
        f.fail("geom.vertices", f"{int(outside.sum())} vertices lie outside the domain's "
                                f"bounds {domain.bounds}")
    out = dict(vertices=vertices, face_offsets=offsets, face_vertices=face_vertices,
               face_edges=face_edges, edges=edges)
    if f.has("geom.vertex_values"):
        out["vertex_values"] = f.shaped("geom.vertex_values", "float64", (V, n_out),
                                        " (one value per vertex and output)")
    return out


def _check_measure(f, stored, computed, scale, domain):
    """Stored measures against those of the geometry; their sum against the domain's."""
    if np.any(np.abs(stored - computed) > CHECK_RTOL * scale):
        r = int(np.argmax(np.abs(stored - computed) - CHECK_RTOL * scale))
        f.fail("measure", f"region {r} has measure {stored[r]} but its geometry gives "
                          f"{computed[r]}")
    total = float(np.sum(computed))
    if abs(total - domain.measure) > CHECK_RTOL * domain.measure:
        f.fail("measure", f"the regions cover {total} but the domain measures {domain.measure}")


def _check_belongs_to_network(f, partition, u, slot_u, slot_region):
    """The partition's maps and patterns against a float64 forward pass of its network.

    ``u`` are the geometry's points (domain coordinates); ``slot_u`` and
    ``slot_region`` say which point is a corner of which region. On a region, a
    neuron whose bit is on must be ``>= -tol`` at every corner, one whose bit is off
    ``<= tol``, and the output map must give the network's output at every corner
    (and equal the stored vertex values) to within ``tol``. A layer's ``tol`` is
    ``CHECK_RTOL`` times the magnitude of its terms over the points (``max |z| +
    |W| @ max |a_in| + |b|``, per neuron, so rescaling a neuron rescales its
    tolerance); for an encoded line, plus the neuron's largest slope times the
    distance by which the engine may move a breakpoint (``10 MERGE`` of the length).
    """
    net = partition.network
    encoded = isinstance(partition, EncodedPartition1D)
    if encoded:
        a = partition.encode(u)
        corner = a[slot_u]
        slope = np.abs(partition.beta)         # |d feature / du| <= |beta|
        moved = 10 * MERGE * (partition.points[-1] - partition.points[0])
    else:
        a = partition.domain.to_input(u)
        corner = u[slot_u][:, None] if u.ndim == 1 else u[slot_u]
    # bit k of a point's words: neuron k is clearly positive (resp. negative) there
    words = partition.packed_patterns.shape[1]
    positive = np.zeros((a.shape[0], words), dtype=np.uint64)
    negative = np.zeros((a.shape[0], words), dtype=np.uint64)
    start = 0
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        z = a @ W.T
        z += b
        largest = np.maximum(z.max(axis=0), -z.min(axis=0))
        tol = CHECK_RTOL * (largest + np.abs(W) @ np.abs(a).max(axis=0) + np.abs(b))
        if encoded:
            slope = np.abs(W) @ slope
            tol += moved * slope
            if l < len(net.slopes):
                slope = slope * max(1.0, abs(float(net.slopes[l])))
        if l == len(net.slopes):
            break
        kinks = net.kink_mask(l)      # a carried unit has no bit (and no kink)
        _or_bits(positive, (z > tol)[:, kinks], start)
        _or_bits(negative, (z < -tol)[:, kinks], start)
        start += int(kinks.sum())
        a = net._activate(l, z, net.slopes[l])
    packed = partition.packed_patterns
    # a region's pattern speaks for every bit but a max's comparisons off its winner's
    # path, which it sets to 0 whatever their sign (Network.canonical)
    care = np.full(packed.shape, ~np.uint64(0))
    if net.max_trees is not None:
        off = np.zeros((len(packed), net.n_hidden), dtype=bool)
        off[:, net.max_trees[:, 0]] = ~net.on_path(unpack_patterns(packed, net.n_hidden))
        care &= ~pack_patterns(off)
    n_kinks = np.cumsum([net.n_kinks(l) for l in range(len(net.slopes))])
    for s in range(0, slot_u.shape[0], _CHUNK):
        bits = packed[slot_region[s:s + _CHUNK]]
        corners = slot_u[s:s + _CHUNK]
        wrong = ((bits & negative[corners]) | (~bits & positive[corners]))
        wrong &= care[slot_region[s:s + _CHUNK]]
        if np.any(wrong):
            slot, word = np.argwhere(wrong)[0]
            value = int(wrong[slot, word])
            k = 64 * int(word) + (value & -value).bit_length() - 1
            layer = int(np.searchsorted(n_kinks, k, side="right")) + 1
            f.fail("packed_patterns", f"the pattern of region {int(slot_region[s + slot])} says "
                                      f"neuron {k} (hidden layer {layer}) is "
                                      f"{'on' if bits[slot, word] >> np.uint64(k % 64) & np.uint64(1) else 'off'}"
                                      " but the network has the other sign at a corner")
    A, c = partition.affine
    fit = np.einsum("sod,sd->so", A[slot_region], corner) + c[slot_region]
    fit_tol = CHECK_RTOL * (np.einsum("sod,sd->so", np.abs(A[slot_region]), np.abs(corner))
                            + np.abs(c[slot_region]))
    bad = np.abs(fit - z[slot_u]) > tol + fit_tol
    if np.any(bad):
        r = int(slot_region[np.argmax(bad.any(axis=1))])
        f.fail("A", f"the output map of region {r} disagrees with the network at its corners "
                    "(the maps, weights or domain were changed)")
    values = getattr(partition, "vertex_values", None)
    if values is not None:
        if np.any(np.abs(values - z) > tol):
            f.fail("geom.vertex_values", "disagrees with the network's output at the vertices")


_CHUNK = 1 << 16   # corners checked at a time (bounds the memory of the pattern check)


def _or_bits(words, flags, start):
    """OR the ``(m, width)`` bool ``flags`` into ``words`` as bits ``start ..``."""
    shift = start % 64
    padded = np.zeros((flags.shape[0], shift + flags.shape[1]), dtype=bool)
    padded[:, shift:] = flags
    packed = pack_patterns(padded)
    first = start // 64
    words[:, first:first + packed.shape[1]] |= packed


def load(path):
    """Read a partition written by :func:`save`, checking the file first.

    Returns an instance of the class the file names (one of :data:`CLASSES`), with
    the same arrays, network and domain. Raises ``FileNotFoundError`` for a missing
    file and ``ValueError`` naming the file and the field for anything else: not a
    regions partition file, a newer version, an unknown class, a missing or unknown
    key, or an array that fails a check (see the module's "What load checks").
    """
    f = _open(path)
    with f.z:
        layout = _layout_of(f)
        network = _read_network(f, layout)
        input_dim = network.input_dim
        domain = _read_domain(f, layout, input_dim)
        common = _read_common(f, layout, network)
        n = common["packed_patterns"].shape[0]
        if layout.dim == 1:
            geometry = {"points": _read_points(f, domain, n)}
            if layout.encoded:
                geometry.update(_read_line_features(f, network, domain))
        elif layout.encoded:
            geometry = _read_curved_faces(f, domain, n)
        else:
            geometry = _read_faces(f, domain, n, network.output_dim)
        _refuse_unknown_keys(f, layout)
        legacy = {name: f.array(f"geom.{name}", "int64" if name == "pattern_id" else "float64",
                                1 if name != "intervals" else 2)
                  for name in layout.legacy if f.has(f"geom.{name}")}
    partition = _build(layout, network, domain, common, geometry)
    for name, value in legacy.items():
        if value.shape != getattr(partition, name).shape or \
                not np.array_equal(value, getattr(partition, name)):
            f.fail(f"geom.{name}", "disagrees with what geom.points and packed_patterns give")
    if layout.encoded and layout.dim == 2:
        _check_measure(f, common["measure"], partition.measure, partition.measure, domain)
        _check_curved_faces(f, partition)
    elif layout.dim == 1:
        _check_measure(f, common["measure"], partition.measure, partition.measure, domain)
        n = len(partition)
        slot_u = np.repeat(np.arange(n), 2) + np.tile([0, 1], n)
        _check_belongs_to_network(f, partition, partition.points, slot_u,
                                  np.repeat(np.arange(n), 2))
    else:
        scale = _shoelace_scale(partition)
        _check_measure(f, common["measure"], partition.measure, scale, domain)
        slots = np.repeat(np.arange(n), np.diff(partition.face_offsets))
        _check_belongs_to_network(f, partition, partition.vertices, partition.face_vertices, slots)
    return partition


def _read_curved_faces(f, domain, n):
    """The faces of an encoded 2D partition: ``n`` WKB polygons (holes allowed),
    each walked before the parser sees it, valid, and inside the domain to the
    stored tolerance."""
    import shapely

    if not domain.is_identity:
        f.fail("domain.basis", "an encoded 2D partition lives in the encoding's own (x, y) "
                               "coordinates: origin 0 and the identity basis")
    tol = float(f.array("geom.tol", "float64", 0))
    if not 0 < tol < 1e-2 * np.sqrt(domain.measure):
        f.fail("geom.tol", f"must be positive and small against the domain, got {tol!r}")
    offsets = f.shaped("geom.wkb_offsets", "int64", (n + 1,), f" ({n} faces, as packed_patterns has)")
    wkb = f.array("geom.wkb", "uint8", 1).tobytes()
    if offsets[0] != 0 or offsets[-1] != len(wkb) or np.any(np.diff(offsets) < 9):
        f.fail("geom.wkb_offsets", f"must run from 0 to the {len(wkb)} bytes of geom.wkb in "
                                   "steps of at least 9 (one polygon each)")
    blobs = [wkb[offsets[r]:offsets[r + 1]] for r in range(n)]
    for r, blob in enumerate(blobs):
        _check_polygon_wkb(f, blob, "geom.wkb", f"face {r}")
    try:
        geoms = shapely.from_wkb(blobs)
    except Exception as e:  # shapely.errors.GEOSException and friends
        f.fail("geom.wkb", f"holds a face that is not a WKB geometry ({type(e).__name__}: {e})")
    bad = np.flatnonzero(~shapely.is_valid(geoms) | shapely.is_empty(geoms))
    if bad.size:
        f.fail("geom.wkb", f"face {int(bad[0])} is not a valid, non-empty polygon "
                           f"({bad.size} such faces)")
    from .encoded.engine2d import _domain_polygon

    region = shapely.buffer(_domain_polygon(domain), 4 * tol)
    outside = np.flatnonzero(~shapely.covers(region, geoms))
    if outside.size:
        f.fail("geom.wkb", f"face {int(outside[0])} reaches outside the domain (by more than "
                           f"4 tol = {4 * tol:g})")
    return {"geoms": list(geoms), "tol": tol}


def _check_curved_faces(f, partition):
    """Curved faces must carry the network's pattern: at a point inside each face,
    farther than ``4 tol`` from its boundary, the network's activation pattern is
    the stored one (that they tile the domain is :func:`_check_measure`'s)."""
    import shapely

    geoms = np.asarray(partition.polygons(), dtype=object)
    inside = shapely.point_on_surface(geoms)
    clear = shapely.distance(inside, shapely.boundary(geoms)) > 4 * partition.tol
    pts = shapely.get_coordinates(inside[clear])
    if not pts.shape[0]:
        return
    net = partition.network
    states = net.patterns(net.encoding.encode_numpy(pts))
    wrong = np.flatnonzero(np.any(states != partition.patterns[clear], axis=1))
    if wrong.size:
        r = int(np.flatnonzero(clear)[wrong[0]])
        f.fail("packed_patterns", f"face {r} holds the pattern of another region: the "
                                  f"network's activations inside it differ ({wrong.size} faces)")


def _shoelace_scale(partition):
    """Per face, the sum of the absolute terms of its shoelace sum: the scale of the
    rounding of its area (equal to the area for a convex face)."""
    v = partition.vertices[partition.face_vertices]
    off = partition.face_offsets
    first = np.repeat(v[off[:-1]], np.diff(off), axis=0)
    rel = v - first
    nxt = np.arange(1, v.shape[0] + 1)
    nxt[off[1:] - 1] = off[:-1]
    cross = np.abs(rel[:, 0] * rel[nxt, 1] - rel[nxt, 0] * rel[:, 1])
    return 0.5 * np.add.reduceat(cross, off[:-1])


def _refuse_unknown_keys(f, layout):
    known = {"format", "version", "class", "dim", "packed_patterns", "measure", "A", "c",
             "stats", "net.n_layers", "net.slopes", "net.names", "domain.kind", "domain.origin",
             "domain.basis"}
    known |= {k for k in f.keys if k.startswith(("net.W", "net.b"))}  # checked by _read_network
    known |= set(_VERSION2_KEYS)                                        # and by _read_traced
    known |= {f"domain.{k}" for k in _DOMAIN_KEYS[f.text("domain.kind")]}
    if layout.encoded:
        known |= {"enc.kinds", "enc.omegas", "enc.class"}
    known |= {f"geom.{k}" for k in layout.geometry + layout.optional + layout.legacy}
    unknown = sorted(f.keys - known)
    if unknown:
        raise ValueError(f"{f.where}: fields this version does not read: {unknown[:8]} "
                         "(a file from a newer regions, or edited)")


def _build(layout, network, domain, common, geometry):
    if layout.cls is Partition2D:
        # the measure is recomputed from the checked geometry and compared afterwards
        return Partition2D(network, domain, packed_patterns=common["packed_patterns"],
                           A=common["A"], c=common["c"], stats=common["stats"], **geometry)
    if layout.cls is EncodedPartition2D:
        bits = unpack_patterns(common["packed_patterns"], network.n_hidden)
        return EncodedPartition2D(network, domain, geometry["geoms"], bits, common["A"],
                                  common["c"], geometry["tol"], common["stats"])
    if layout.cls is EncodedPartition1D:
        return EncodedPartition1D(network, domain, geometry["points"], common["packed_patterns"],
                                  common["A"], common["c"], geometry["kinds"], geometry["alpha"],
                                  geometry["beta"], common["stats"])
    return Partition1D(network, domain, geometry["points"], common["packed_patterns"],
                       common["A"], common["c"], common["stats"])


# ----------------------------------------------------------------------------- GeoJSON
def pattern_hex(packed, n_hidden):
    """Activation patterns as hex strings: the integer ``sum_k bit_k 2**k`` (neuron ``k``
    in layer-major order) in ``ceil(n_hidden / 4)`` lowercase hex digits.

    >>> from regions.partition import pack_patterns
    >>> pattern_hex(pack_patterns([[True, False, False, False, True]]), 5)
    ['11']
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint64)
    width = max(1, (n_hidden + 3) // 4)
    if packed.shape[1] == 0:
        return ["0" * width] * packed.shape[0]
    # most significant word first, 16 hex digits each, then the low `width` digits
    rows = packed[:, ::-1].tolist()
    return ["".join(f"{w:016x}" for w in row)[-width:] for row in rows]


def to_geojson(partition, path=None):
    """A 2D partition as a GeoJSON ``FeatureCollection`` of polygons.

    Each feature is one region (a face): its polygon in the domain's own
    coordinates (exterior ring counter-clockwise, holes clockwise, as RFC 7946
    asks) and properties ``region`` (index), ``area`` (equal to
    ``partition.measure``) and ``pattern`` (hex, see :func:`pattern_hex`). The
    collection's ``properties`` name the domain and the hidden-layer widths.

    An encoded 2D partition (curved faces, :class:`EncodedPartition2D`) is written
    the same way from its polygons, with their holes; each feature also has
    ``area_bounds`` (the certified interval of ``measure_bounds``; its upper end
    ``null`` where a junction of the face is not certified) and
    ``pattern_id``, and the collection's ``boundary_tolerance`` says that every
    boundary polyline is within that Hausdorff distance of the true curve.

    Returns the dict; with ``path``, also writes it as JSON (``.geojson``), to a
    temporary file renamed over ``path`` when complete.

    >>> import regions
    >>> p = regions.partition([(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))],
    ...                       ((-1, 1), (-1, 1)))
    >>> gj = to_geojson(p)
    >>> len(gj["features"]), gj["features"][0]["geometry"]["type"]
    (4, 'Polygon')
    >>> sum(f["properties"]["area"] for f in gj["features"])
    4.0
    """
    if getattr(partition, "dim", None) != 2:
        raise ValueError("GeoJSON export needs a 2D partition (regions of the plane); got "
                         f"{type(partition).__name__} with dim={getattr(partition, 'dim', None)}; "
                         "save 1D partitions with save(partition, 'file.npz')")
    hexes = pattern_hex(partition.packed_patterns, partition.n_hidden)
    areas = np.asarray(partition.measure, dtype=np.float64)
    properties = {"domain": repr(partition.domain), "widths": partition.network.widths,
                  "n_hidden": partition.n_hidden,
                  "pattern_encoding": "hex of sum_k bit_k 2**k, neurons layer-major"}
    if isinstance(partition, EncodedPartition2D):
        rings = _curved_rings(partition)
        # a face without a certified bound has [0, inf]: JSON has no inf, so null
        bounds = [[lo, hi if np.isfinite(hi) else None]
                  for lo, hi in np.asarray(partition.measure_bounds, dtype=np.float64).tolist()]
        ids = np.asarray(partition.pattern_id).tolist()
        extra = [{"area_bounds": bounds[r], "pattern_id": ids[r]} for r in range(len(rings))]
        properties["boundary_tolerance"] = partition.tol
    else:
        verts = np.asarray(partition.vertices, dtype=np.float64)
        offsets = np.asarray(partition.face_offsets, dtype=np.int64)
        coords = verts[np.asarray(partition.face_vertices, dtype=np.int64)].tolist()
        rings = []
        for r in range(len(offsets) - 1):
            ring = coords[offsets[r]:offsets[r + 1]]
            rings.append([ring + ring[:1]])
        extra = [{}] * len(rings)
    features = [{"type": "Feature", "id": r, "geometry": {"type": "Polygon", "coordinates": rr},
                 "properties": {"region": r, "area": float(areas[r]), "pattern": hexes[r],
                                **extra[r]}}
                for r, rr in enumerate(rings)]
    collection = {"type": "FeatureCollection", "properties": properties, "features": features}
    if path is not None:
        def write(f):
            text = io.TextIOWrapper(f, encoding="utf-8")
            json.dump(collection, text, separators=(",", ":"))
            text.flush()
            text.detach()  # the binary file stays open for its fsync

        _replace_atomically(path, write)
    return collection


def _curved_rings(partition):
    """Each face's rings (exterior counter-clockwise, holes clockwise) as coordinate lists."""
    import shapely
    from shapely.geometry.polygon import orient  # shapely >= 2.0 (orient_polygons is 2.1)

    out = []
    for g in partition.geoms:
        if not isinstance(g, shapely.Polygon):  # the engine keeps one connected part per face
            raise ValueError(f"face {len(out)} is a {g.geom_type}, not a polygon")
        g = orient(g, 1.0)
        out.append([np.asarray(r.coords).tolist() for r in (g.exterior, *g.interiors)])
    return out
