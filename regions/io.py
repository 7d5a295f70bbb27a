"""Persistence: a partition to one ``.npz`` file and back, and 2D GeoJSON export.

The ``.npz`` holds plain arrays only (no pickles), so it opens with
``np.load(path)`` anywhere, and :func:`load` rebuilds the same class:

==========================  ============================================================
key                         content
==========================  ============================================================
``format``, ``version``     ``"regions.partition"`` and the format version (1)
``class``                   ``"module:ClassName"`` of the partition (e.g. ``Partition2D``)
``net.n_layers``            number of affine layers ``L`` (hidden + output)
``net.W{l}``, ``net.b{l}``  weights ``(out, in)`` and biases of layer ``l``, float64
``net.slopes``              activation negative slope after each hidden layer
``net.names``               layer names (strings)
``enc.kinds``/``enc.omegas`` the encoding's feature table, when the network has one
``domain.kind``             ``interval``, ``segment``, ``box``, ``plane`` or ``polygon``
``domain.*``                its parameters (bounds, origin, basis; a polygon as WKB)
``packed_patterns``         ``(n, words)`` uint64 activation bits
``measure``, ``A``, ``c``   lengths / areas and the per-region affine map
``stats``                   the engine's statistics as JSON text
``geom.<name>``             the subclass's geometry arrays: 1D ``breakpoints``,
                            ``intervals`` (``pattern_id`` when encoded); 2D
                            ``vertices``, ``face_offsets``, ``face_vertices``; every
                            array the class's constructor (or ``from_arrays``) takes
                            and the partition keeps under the same name (e.g.
                            ``points``, ``edges``); and every entry of the
                            partition's ``_arrays`` dict, if it has one
==========================  ============================================================

Examples
--------
>>> import numpy as np, regions                                   # doctest: +SKIP
>>> p = regions.partition([(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))],
...                       ((-1, 1), (-1, 1)))                      # doctest: +SKIP
>>> p.save("p.npz"); q = regions.load("p.npz")                    # doctest: +SKIP
>>> len(q) == len(p), np.array_equal(q.locate([[0.5, 0.5]]), p.locate([[0.5, 0.5]]))
(True, True)
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["save", "load", "load_network", "to_geojson", "pattern_hex", "FORMAT", "VERSION"]

FORMAT = "regions.partition"
VERSION = 1

# geometry attributes saved for each dimension (when the partition has them)
_GEOMETRY = {
    1: ("breakpoints", "intervals", "pattern_id"),
    2: ("vertices", "face_offsets", "face_vertices"),
}


# ----------------------------------------------------------------------------- network
def _network_arrays(network):
    out = {"net.n_layers": np.int64(len(network.weights)),
           "net.slopes": np.asarray(network.slopes, dtype=np.float64),
           "net.names": np.asarray([str(n) for n in (network.names or [])], dtype=str)}
    for l, (W, b) in enumerate(zip(network.weights, network.biases)):
        out[f"net.W{l}"] = np.asarray(W, dtype=np.float64)
        out[f"net.b{l}"] = np.asarray(b, dtype=np.float64)
    enc = network.encoding
    if enc is not None:
        kinds, omegas = enc.feature_spec()
        out["enc.kinds"] = np.asarray(kinds, dtype=np.int64)
        out["enc.omegas"] = np.asarray(omegas, dtype=np.float64)
        out["enc.class"] = np.asarray(f"{type(enc).__module__}:{type(enc).__qualname__}")
    return out


def _encoding_from_spec(kinds, omegas):
    """An :class:`regions.encoding.Encoding` with exactly this feature table."""
    from .encoding import Encoding

    return Encoding.from_spec(kinds, omegas)


def _network_from(z, where):
    from .network import Network

    try:
        n_layers = int(z["net.n_layers"])
        weights = [np.array(z[f"net.W{l}"], dtype=np.float64) for l in range(n_layers)]
        biases = [np.array(z[f"net.b{l}"], dtype=np.float64) for l in range(n_layers)]
        slopes = np.array(z["net.slopes"], dtype=np.float64)
    except KeyError as e:
        raise ValueError(f"{where}: the network is incomplete (missing {e.args[0]!r})") from None
    names = [str(s) for s in z["net.names"]] if "net.names" in z else []
    encoding = None
    if "enc.kinds" in z or "enc.omegas" in z:
        try:
            encoding = _encoding_from_spec(np.array(z["enc.kinds"]), np.array(z["enc.omegas"]))
        except KeyError as e:
            raise ValueError(f"{where}: the encoding is incomplete (missing {e.args[0]!r})") from None
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return Network(weights, biases, slopes, encoding, names)


# ----------------------------------------------------------------------------- domain
def _domain_arrays(domain):
    from . import domain as D

    out = {"domain.origin": np.asarray(domain.origin, dtype=np.float64),
           "domain.basis": np.asarray(domain.basis, dtype=np.float64)}
    if isinstance(domain, D.Segment):
        out.update({"domain.kind": np.asarray("segment"), "domain.p0": domain.p0,
                    "domain.p1": domain.p1})
    elif isinstance(domain, D.Interval):
        out.update({"domain.kind": np.asarray("interval"),
                    "domain.bounds": np.array([domain.lo, domain.hi])})
    elif isinstance(domain, D.Plane):
        out.update({"domain.kind": np.asarray("plane"),
                    "domain.bounds": np.array([domain.xr, domain.yr], dtype=np.float64)})
    elif isinstance(domain, D.Box):
        out.update({"domain.kind": np.asarray("box"),
                    "domain.bounds": np.array([domain.xr, domain.yr], dtype=np.float64)})
    elif isinstance(domain, D.PolygonDomain):
        import shapely

        out.update({"domain.kind": np.asarray("polygon"),
                    "domain.wkb": np.frombuffer(shapely.to_wkb(domain.polygon), dtype=np.uint8)})
    else:
        raise ValueError(f"cannot save a partition over a {type(domain).__name__} domain; "
                         "savable domains are Interval, Segment, Box, Plane and PolygonDomain")
    return out


def _domain_from(z, where):
    from . import domain as D

    kind = str(z["domain.kind"])
    origin, basis = np.array(z["domain.origin"]), np.array(z["domain.basis"])
    if kind == "interval":
        lo, hi = z["domain.bounds"]
        return D.Interval(lo, hi, origin=origin, basis=basis)
    if kind == "segment":
        return D.Segment(np.array(z["domain.p0"]), np.array(z["domain.p1"]))
    if kind == "box":
        xr, yr = np.array(z["domain.bounds"])
        return D.Box(tuple(xr), tuple(yr), origin=origin, basis=basis)
    if kind == "plane":
        xr, yr = np.array(z["domain.bounds"])
        return D.Plane(origin=origin, directions=basis.T, box=(tuple(xr), tuple(yr)))
    if kind == "polygon":
        import shapely

        poly = shapely.from_wkb(np.array(z["domain.wkb"], dtype=np.uint8).tobytes())
        return D.PolygonDomain(poly, origin=origin, basis=basis)
    raise ValueError(f"{where}: unknown domain kind {kind!r}; this version reads "
                     "interval, segment, box, plane and polygon")


# ----------------------------------------------------------------------------- save / load
def _constructor(cls):
    """The callable :func:`load` rebuilds ``cls`` with: ``cls.from_arrays`` or ``cls``."""
    return getattr(cls, "from_arrays", None) or cls


def _geometry_names(partition):
    """Arrays to save besides the common ones: the contract's geometry for the
    dimension, every array-valued constructor parameter the partition keeps as an
    attribute of the same name, and the entries of its ``_arrays`` dict."""
    names = [n for n in _GEOMETRY.get(partition.dim, ()) if _has(partition, n)]
    common = {"self", "network", "domain", "packed_patterns", "measure", "A", "c", "stats"}
    for n in inspect.signature(_constructor(type(partition))).parameters:
        if n not in common and n not in names and _has(partition, n) \
                and isinstance(getattr(partition, n), np.ndarray):
            names.append(n)
    extra = getattr(partition, "_arrays", None)
    if isinstance(extra, dict):
        names += [n for n in extra if n not in names]
    return names


def _has(obj, name):
    try:
        return getattr(obj, name) is not None
    except (AttributeError, NotImplementedError):
        return False


def _geometry_value(partition, name):
    extra = getattr(partition, "_arrays", None)
    if isinstance(extra, dict) and name in extra:
        return extra[name]
    return getattr(partition, name)


def save(partition, path):
    """Write ``partition`` to ``path`` as an uncompressed ``.npz`` (the suffix is added
    if missing, as :func:`numpy.savez` does). Returns the path written.

    Everything :func:`load` needs is stored as arrays: the network, the encoding's
    feature table, the domain, packed patterns, measures, the affine maps and the
    geometry arrays of the partition's class.
    """
    from .partition import Partition

    if not isinstance(partition, Partition):
        raise ValueError(f"save expects a regions Partition, got {type(partition).__name__}")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    A, c = partition.affine
    cls = type(partition)
    arrays = {
        "format": np.asarray(FORMAT),
        "version": np.int64(VERSION),
        "class": np.asarray(f"{cls.__module__}:{cls.__qualname__}"),
        "dim": np.int64(partition.dim),
        "packed_patterns": np.asarray(partition.packed_patterns, dtype=np.uint64),
        "measure": np.asarray(partition.measure, dtype=np.float64),
        "A": np.asarray(A, dtype=np.float64),
        "c": np.asarray(c, dtype=np.float64),
        "stats": np.asarray(json.dumps(_jsonable(getattr(partition, "stats", {})))),
    }
    arrays.update(_network_arrays(partition.network))
    arrays.update(_domain_arrays(partition.domain))
    for name in _geometry_names(partition):
        arrays[f"geom.{name}"] = np.asarray(_geometry_value(partition, name))
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


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


def _open(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError ...
        raise ValueError(f"{str(path)!r} is not a regions partition file (.npz written by "
                         f"regions.save): {type(e).__name__}: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(path)!r} holds a single array, not a regions partition "
                         "file (.npz written by regions.save)")
    if "format" not in z or str(z["format"]) != FORMAT:
        z.close()
        raise ValueError(f"{str(path)!r} is not a regions partition file: it has no "
                         f"format={FORMAT!r} entry (keys: {sorted(z.files)[:8]})")
    version = int(z["version"])
    if version > VERSION:
        z.close()
        raise ValueError(f"{str(path)!r} is format version {version}; this regions reads "
                         f"versions up to {VERSION} (upgrade regions)")
    return z


def load_network(path):
    """Only the network stored in a partition file, as a :class:`regions.Network`."""
    with _open(path) as z:
        return _network_from(z, repr(str(path)))


def _resolve_class(name, where):
    module, _, qual = name.partition(":")
    if not module.startswith("regions"):
        raise ValueError(f"{where}: class {name!r} is not a regions partition class")
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(f"{where}: this regions installation has no partition class "
                         f"{name!r}") from None
    return obj


def _construct(cls, fields):
    """Call ``cls.from_arrays`` if it exists, else ``cls(...)``, passing every saved
    field whose name is a parameter of that callable."""
    target = _constructor(cls)
    params = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in fields.items() if takes_any or k in params}
    missing = [n for n, p in params.items()
               if p.default is inspect.Parameter.empty and n not in kwargs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    if missing:
        raise ValueError(f"cannot rebuild {cls.__name__}: the file lacks {missing}")
    obj = target(**kwargs)
    # arrays the constructor did not take go back where save found them
    extra = getattr(obj, "_arrays", None)
    for k, v in fields.items():
        if k in kwargs or k in ("network", "domain", "stats"):
            continue
        if isinstance(extra, dict):
            extra.setdefault(k, v)
    return obj


def load(path):
    """Read a partition written by :func:`save` (or ``Partition.save``).

    Returns an instance of the same class, with the same arrays, network and domain.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    for anything that is not a regions partition file or comes from a newer version.
    """
    where = repr(str(path))
    with _open(path) as z:
        cls = _resolve_class(str(z["class"]), where)
        fields = {
            "network": _network_from(z, where),
            "domain": _domain_from(z, where),
            "packed_patterns": np.array(z["packed_patterns"]),
            "measure": np.array(z["measure"]),
            "A": np.array(z["A"]),
            "c": np.array(z["c"]),
            "stats": json.loads(str(z["stats"])) if "stats" in z else {},
        }
        for key in z.files:
            if key.startswith("geom."):
                fields[key[5:]] = np.array(z[key])
    return _construct(cls, fields)


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

    Each feature is one region: its polygon (counter-clockwise exterior ring, in the
    domain's own coordinates) and properties ``region`` (index), ``area`` (equal to
    ``partition.measure``) and ``pattern`` (hex, see :func:`pattern_hex`). The
    collection's ``properties`` name the domain and the hidden-layer widths.

    Returns the dict; with ``path``, also writes it as JSON (``.geojson``).
    """
    if getattr(partition, "dim", None) != 2:
        raise ValueError("GeoJSON export needs a 2D partition (regions of the plane); got "
                         f"{type(partition).__name__} with dim={getattr(partition, 'dim', None)}; "
                         "save 1D partitions with save(partition, 'file.npz')")
    verts = np.asarray(partition.vertices, dtype=np.float64)
    offsets = np.asarray(partition.face_offsets, dtype=np.int64)
    fv = np.asarray(partition.face_vertices, dtype=np.int64)
    hexes = pattern_hex(partition.packed_patterns, partition.n_hidden)
    areas = np.asarray(partition.measure, dtype=np.float64)
    coords = verts[fv].tolist()
    features = []
    for r in range(len(offsets) - 1):
        ring = coords[offsets[r]:offsets[r + 1]]
        ring.append(ring[0])
        features.append({
            "type": "Feature",
            "id": r,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"region": r, "area": float(areas[r]), "pattern": hexes[r]},
        })
    collection = {
        "type": "FeatureCollection",
        "properties": {"domain": repr(partition.domain), "widths": partition.network.widths,
                       "n_hidden": partition.n_hidden,
                       "pattern_encoding": "hex of sum_k bit_k 2**k, neurons layer-major"},
        "features": features,
    }
    if path is not None:
        with open(path, "w") as f:
            json.dump(collection, f, separators=(",", ":"))
    return collection
