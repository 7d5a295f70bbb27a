"""Partition files are untrusted input: load calls nothing a file names, and every
array is checked before anything uses it.

The reference for "nothing was run" is the file system (the CLI the crafted file
names would write a marker file) and a stand-in for the named function that
records calls; the reference for "loads to the same partition" is the original
object, array by array. The mutation corpus perturbs every array of valid 1D, 2D
(box and non-convex polygon) and encoded files in shape, dtype, range and value,
one change per file; each file must be refused with a ValueError naming the file,
or load to a partition equal to the original.
"""
import json

import numpy as np
import pytest
import shapely
import torch

import regions
from regions.io import load, load_network, save
from test_carried import Maxout, _residual_sequential
from test_trace import _init


def _net(sizes, seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(b, a)) * np.sqrt(2 / a), 0.3 * rng.normal(size=b))
            for a, b in zip(sizes[:-1], sizes[1:])]


def _encoded_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(regions.PositionalEncoding(3), torch.nn.Linear(6, 6, dtype=torch.float64),
                               torch.nn.ReLU(), torch.nn.Linear(6, 5, dtype=torch.float64),
                               torch.nn.ReLU(), torch.nn.Linear(5, 1, dtype=torch.float64))


_ARROW = shapely.Polygon([(-2, -2), (2, -2), (2, 2), (0, 0.5), (-2, 2)])


def _partitions():
    return {
        "raw1d": regions.partition(_net([1, 6, 6, 1], 0), (-2.0, 2.0), progress=False),
        "box": regions.partition(_net([2, 5, 5, 2], 1), ((-1, 1), (-1, 1)), progress=False),
        "arrow": regions.partition(_net([2, 5, 4, 1], 2), _ARROW, progress=False),
        "encoded": regions.partition(_encoded_model(3), (0.0, 1.0), progress=False),
        # traced models: carried units (a residual stream) and max trees (format version 2)
        "residual": regions.partition(_init(_residual_sequential(2), 51), ((-1, 1), (-1, 1)),
                                      progress=False),
        "maxout": regions.partition(_init(Maxout(2), 53), ((-1, 1), (-1, 1)), progress=False),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> (partition, dict of the arrays its file holds)."""
    folder = tmp_path_factory.mktemp("valid")
    out = {}
    for name, p in _partitions().items():
        path = save(p, folder / f"{name}.npz")
        with np.load(path, allow_pickle=False) as z:
            out[name] = (p, {k: z[k] for k in z.files})
    return out


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _assert_equal_partitions(q, p, same_network=True):
    """Every array of ``q`` equals that of ``p``; with ``same_network=False`` the
    networks may differ (they are compared by :func:`_same_function` instead)."""
    assert type(q) is type(p) and len(q) == len(p)
    for name in ("packed_patterns", "measure"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    for a, b in zip(q.affine, p.affine):
        np.testing.assert_array_equal(a, b)
    geometry = {1: ["points"], 2: ["vertices", "face_offsets", "face_vertices", "face_edges",
                                   "edges", "vertex_values", "centroids"]}[p.dim]
    if p.network.encoding is not None:
        geometry += ["kinds", "alpha", "beta", "pattern_id"]
    for name in geometry:
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    assert q.stats == p.stats
    qn, pn = q.network, p.network
    if not same_network:
        return
    assert len(qn.weights) == len(pn.weights) and qn.names == pn.names
    for a, b in zip(qn.weights + qn.biases + [qn.slopes], pn.weights + pn.biases + [pn.slopes]):
        np.testing.assert_array_equal(a, b)
    assert (qn.encoding is None) == (pn.encoding is None)
    if pn.encoding is not None:
        for a, b in zip(qn.encoding.feature_spec(), pn.encoding.feature_spec()):
            np.testing.assert_array_equal(a, b)
    assert type(q.domain) is type(p.domain) and repr(q.domain) == repr(p.domain)
    np.testing.assert_array_equal(q.domain.origin, p.domain.origin)
    np.testing.assert_array_equal(q.domain.basis, p.domain.basis)
    if hasattr(p.domain, "polygon"):
        assert q.domain.polygon.equals_exact(p.domain.polygon, 0.0)


def _forward(network, x):
    """Hidden pre-activations and output, written out here (not Network.forward)."""
    a, pre = x, []
    for l, (W, b) in enumerate(zip(network.weights, network.biases)):
        z = a @ W.T + b
        if l == len(network.weights) - 1:
            return np.concatenate(pre, axis=1), z
        pre.append(z)
        a = np.where(z > 0, z, network.slopes[l] * z)
        if network.linear is not None:           # a carried unit passes its value on
            a[:, network.linear[l]] = z[:, network.linear[l]]


def _same_function(q, p, rng):
    """The two networks give the same patterns and outputs all over the domain: at
    random points, at the geometry's corners and at the region midpoints."""
    if p.dim == 1:
        lo, hi = p.points[0], p.points[-1]
        u = np.concatenate([rng.uniform(lo, hi, 3000), p.points, 0.5 * (p.points[1:] + p.points[:-1])])
    else:
        x0, y0, x1, y1 = p.domain.bounds
        u = np.concatenate([rng.uniform([x0, y0], [x1, y1], (3000, 2)), p.vertices, p.centroids])
    x = p.domain.to_input(u)
    if p.network.encoding is not None:
        x = p.network.encoding.encode_numpy(x)
    (zq, yq), (zp, yp) = _forward(q.network, x), _forward(p.network, x)
    return np.array_equal(zq > 0, zp > 0) and np.allclose(yq, yp, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ item 2: nothing is called

def test_a_file_naming_the_cli_runs_nothing(files, tmp_path, monkeypatch):
    """The issue's file: class ``regions.cli:main`` with ``geom.argv``. Loading it ran
    the CLI (here it would compute a partition and write ``marker.npz``)."""
    _, arrays = files["box"]
    marker = tmp_path / "marker.npz"
    crafted = {k: v for k, v in arrays.items() if not k.startswith("geom.")}
    crafted["class"] = np.asarray("regions.cli:main")
    crafted["geom.argv"] = np.asarray(["enumerate", "he:2-4-1", "--out", str(marker)])
    path = _write(tmp_path / "evil.npz", crafted)
    with pytest.raises(ValueError, match=r"evil.npz.*'class'.*'regions.cli:main' is not a "
                                         r"partition class.*accepted: regions.partition1d"):
        load(path)
    assert not marker.exists()

    import regions.cli

    calls = []
    monkeypatch.setattr(regions.cli, "main", lambda *a, **k: calls.append((a, k)))
    with pytest.raises(ValueError, match="regions.cli:main"):
        load(path)
    with pytest.raises(ValueError, match="regions.cli:main"):
        load_network(path)
    assert calls == [] and not marker.exists()


@pytest.mark.parametrize("name", ["regions.partition:Partition", "regions.domain:Box",
                                  "regions.partition2d:Partition2D.__init__", "Partition2D",
                                  "regions.encoded:partition_encoded_segment", ""])
def test_only_the_table_of_classes_is_accepted(files, tmp_path, name):
    _, arrays = files["box"]
    path = _write(tmp_path / "other.npz", dict(arrays, **{"class": np.asarray(name)}))
    with pytest.raises(ValueError, match=r"other.npz.*'class'.*accepted"):
        load(path)


def test_save_writes_only_the_table_classes(tmp_path):
    p = regions.partition(_net([2, 3, 1], 0), ((-1, 1), (-1, 1)), progress=False)

    class Custom(type(p)):
        pass

    p.__class__ = Custom
    with pytest.raises(ValueError, match="save writes Partition1D, Partition2D, "
                                         "EncodedPartition1D, EncodedPartition2D; got Custom"):
        save(p, tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ item 4: the issue's files

def _edited(files, name, tmp_path, **changes):
    _, arrays = files[name]
    arrays = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del arrays[key.replace("__", ".")]
        else:
            arrays[key.replace("__", ".")] = value
    return _write(tmp_path / "edited.npz", arrays)


def test_the_issues_crafted_files_are_refused(files, tmp_path):
    """Each of these segfaulted, read out of bounds, or loaded a wrong partition."""
    _, a = files["box"]
    cases = [
        # read out of bounds and loaded "fine"
        ({"geom__face_vertices": a["geom.face_vertices"] + 1000}, "geom.face_vertices"),
        # len(p) == 5 on a partition of many more regions
        ({"measure": a["measure"][:5]}, "measure"),
        ({"net__W0": a["net.W0"][:, :1]}, "net.W0"),
        ({"net__W0": np.full_like(a["net.W0"], np.nan)}, "net.W0"),
        ({"packed_patterns": a["packed_patterns"][:-3]}, "measure"),
        ({"net__n_layers": np.int64(-1)}, "net.n_layers"),
    ]
    assert len(a["measure"]) > 5
    for change, field in cases:
        with pytest.raises(ValueError, match=rf"edited.npz.*field '{field}'"):
            load(_edited(files, "box", tmp_path, **change))


def test_crafted_offsets_that_segfaulted_are_refused(files, tmp_path):
    """These two made the area kernel read far out of bounds: the interpreter died."""
    _, a = files["box"]
    for change, field in [({"geom__face_offsets": a["geom.face_offsets"] + 100}, "geom.face_offsets"),
                          ({"geom__face_vertices": a["geom.face_vertices"] + 10**9},
                           "geom.face_vertices")]:
        with pytest.raises(ValueError, match=rf"edited.npz.*field '{field}'"):
            load(_edited(files, "box", tmp_path, **change))


def test_damaged_headers_raise_value_error(files, tmp_path):
    _, a = files["raw1d"]
    cases = [
        ({"version": None}, "lacks the field 'version'"),
        ({"version": np.asarray("1")}, "field 'version'.*dtype must be int64"),
        ({"version": np.int64(0)}, "field 'version'.*from 1 to 2"),
        ({"version": np.int64(3)}, "format version 3; this regions reads versions up to 2"),
        ({"format": np.asarray("regions.partitionX")}, "not a regions partition file"),
        ({"format": np.asarray(b"regions.partition")}, "not a regions partition file"),
        ({"stats": np.asarray("{not json")}, "field 'stats'.*not JSON"),
        ({"stats": np.asarray("[1, 2]")}, "field 'stats'.*JSON object"),
        ({"stats": None}, "lacks the field 'stats'"),
        ({"class": None}, "lacks the field 'class'"),
        ({"geom__points": None}, "lacks the field 'geom.points'"),
        ({"net__W1": None}, "field 'net.n_layers'.*missing \\['net.W1'\\]"),
        ({"net__W7": np.eye(2)}, "field 'net.n_layers'.*unexpected \\['net.W7'\\]"),
        ({"domain__kind": np.asarray("box")}, "field 'domain.kind'.*accepted: interval, segment"),
        ({"net__slopes": np.zeros(5)}, "field 'net.slopes'.*shape must be \\(2,\\)"),
        ({"net__slopes": np.array([0.0, np.inf])}, "field 'net.slopes'.*finite"),
        ({"extra": np.zeros(1)}, "fields this version does not read: \\['extra'\\]"),
        ({"geom__points": a["geom.points"][::-1].copy()}, "field 'geom.points'.*increase"),
        ({"measure": a["measure"] * 1.5}, "field 'measure'.*geometry gives"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=rf"edited.npz.*{message}"):
            load(_edited(files, "raw1d", tmp_path, **change))


def test_object_arrays_are_refused_not_unpickled(files, tmp_path):
    _, a = files["raw1d"]
    path = _edited(files, "raw1d", tmp_path, geom__points=np.array(list(a["geom.points"]), dtype=object))
    with pytest.raises(ValueError, match="edited.npz.*field 'geom.points'.*cannot be read"):
        load(path)


def test_a_file_for_another_network_is_refused(files, tmp_path):
    """Consistent shapes, wrong content: the weights, the patterns and the maps must
    belong together (a forward pass at the corners decides)."""
    for name in files:
        p, a = files[name]
        # a weight between two neurons that are each on somewhere, and the output bias
        first, second = p.layer_slices[:2]
        i = int(np.flatnonzero(p.patterns[:, second].any(axis=0))[0])
        j = int(np.flatnonzero(p.patterns[:, first].any(axis=0))[0])
        W1 = a["net.W1"].copy()
        W1[i, j] += 0.5
        last = f"net__b{len(p.network.weights) - 1}"
        for change in ({"net__W1": W1}, {last: a[last.replace("__", ".")] + 0.5}):
            with pytest.raises(ValueError, match="edited.npz.*field '(packed_patterns|A)'"):
                load(_edited(files, name, tmp_path, **change))
        packed = a["packed_patterns"].copy()
        packed[len(packed) // 2, 0] ^= np.uint64(1)        # flip neuron 0 of one region
        with pytest.raises(ValueError, match="edited.npz.*field 'packed_patterns'"):
            load(_edited(files, name, tmp_path, packed_patterns=packed))


def test_files_of_the_previous_writer_still_load(files, tmp_path):
    """Version-1 files written before the fixed table carry derived arrays and
    ``enc.class``; they load, and those arrays are checked against the primary ones."""
    p, a = files["encoded"]
    old = dict(a, **{"geom.breakpoints": p.breakpoints, "geom.intervals": p.intervals,
                     "geom.pattern_id": p.pattern_id,
                     "enc.class": np.asarray("regions.encoding:PositionalEncoding")})
    _assert_equal_partitions(load(_write(tmp_path / "old.npz", old)), p)
    old["geom.breakpoints"] = p.breakpoints + 1e-9
    with pytest.raises(ValueError, match="old.npz.*field 'geom.breakpoints'"):
        load(_write(tmp_path / "old.npz", old))


# ------------------------------------------------------------------ the mutation corpus

def _mutations(a):
    """(kind, label, mutated array) for one array: shape, dtype, range and value."""
    a = np.asarray(a)
    out = []
    if a.ndim >= 1 and a.shape[0] >= 1:
        out.append(("shape", "drop a row", a[:-1]))
        out.append(("shape", "add a row", np.concatenate([a, a[-1:]])))
    out.append(("shape", "reshape", a.reshape(-1) if a.ndim >= 2 else a.reshape(1, -1)))
    for dtype in (np.float32, np.int32, np.bool_, np.str_):
        if a.dtype != dtype:
            try:
                out.append(("dtype", np.dtype(dtype).name, a.astype(dtype)))
            except (ValueError, TypeError, OverflowError):
                pass                    # e.g. text that is not a number
    out.append(("dtype", "object", a.astype(object)))
    out.append(("dtype", "big-endian", a.astype(a.dtype.newbyteorder(">")))
               if a.dtype.kind in "fiu" and a.dtype.itemsize > 1 else
               ("dtype", "bytes", a.astype("S")) if a.dtype.kind == "U" else None)
    if a.dtype.kind in "iuf" and a.size:
        big = 10**9
        with np.errstate(over="ignore"):
            out.append(("range", "+large", (a + np.asarray(big).astype(a.dtype))))
            out.append(("range", "-large", (a - np.asarray(big).astype(a.dtype))))
            out.append(("range", "negated", -a if a.dtype.kind != "u" else ~a))
        for value in ((np.nan, np.inf, -1.0) if a.dtype.kind == "f" else (-1,)):
            b = a.copy()
            b.reshape(-1)[0] = np.asarray(value).astype(a.dtype) if a.dtype.kind != "f" else value
            out.append(("value", f"first = {value}", b))
    if a.dtype.kind == "U":
        out.append(("value", "garbage text", np.full(a.shape, "{x", dtype=a.dtype.str[:2] + "8")))
    return [m for m in out if m is not None]


def _changes(mutated, original):
    """False for a "mutation" that leaves the array as it was (-0.0 for 0.0, -1 written
    over a -1, 10**9 added to uint8 bytes wraps to +0 ...)."""
    return not (mutated.dtype == original.dtype and mutated.shape == original.shape
                and np.array_equal(mutated, original))


def test_mutation_corpus(files, tmp_path):
    """Each mutated file is refused, or loads to the same partition. Strict: no shape
    and no dtype change is accepted (float32 for float64, int32 for int64, a
    big-endian copy, text as bytes: all refused). Two kinds of edits load, and are
    legitimately harmless: a new text in ``net.names`` (labels only, used by no
    computation), and a weight or bias that the partition cannot see (into or out
    of a neuron that is off on the whole domain, and stays off); then every
    partition array is the original's and the two networks give the same patterns
    and outputs all over the domain (checked here by an independent forward pass)."""
    rng = np.random.default_rng(0)
    refused, relabelled, invisible, wrong = {}, [], [], []
    for name, (p, arrays) in files.items():
        for key, value in arrays.items():
            for kind, label, mutated in _mutations(value):
                if not _changes(mutated, value):
                    continue
                path = tmp_path / f"{name}-{key}-{kind}.npz"
                _write(path, dict(arrays, **{key: mutated}))
                try:
                    q = load(path)
                except ValueError as e:
                    assert str(path) in str(e), (name, key, label, str(e))
                    refused[kind] = refused.get(kind, 0) + 1
                    continue
                try:
                    _assert_equal_partitions(q, p, same_network=False)
                except AssertionError:
                    wrong.append((name, key, label))
                    continue
                if key == "net.names" and kind == "value":
                    relabelled.append(name)
                elif key.startswith(("net.W", "net.b")) and kind == "value" \
                        and _same_function(q, p, rng):
                    invisible.append((name, key, label))
                else:
                    wrong.append((name, key, label))
    assert wrong == [], f"mutated files loaded as a different partition: {wrong}"
    assert sorted(relabelled) == sorted(files)
    # every kind of mutation was tried and refused many times over
    assert set(refused) == {"shape", "dtype", "range", "value"}
    assert min(refused.values()) > 100, refused
    assert len(invisible) < 12, invisible


def test_save_is_atomic(files, tmp_path, monkeypatch):
    """A failed write leaves the previous file whole and no temporary file behind."""
    p, _ = files["raw1d"]
    path = save(p, tmp_path / "p.npz")
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(files["box"][0], path)
    assert path.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.npz"]


def test_decompression_bombs_and_deep_json_are_refused(files, tmp_path):
    _, a = files["raw1d"]
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, **dict(a, measure=np.zeros(10**8, dtype=np.uint8)))
    assert bomb.stat().st_size < 10**6
    with pytest.raises(ValueError, match="bomb.npz.*expand to 1000.* bytes.*decompression bomb"):
        load(bomb)
    deep = dict(a, stats=np.asarray("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ValueError, match="deep.npz.*field 'stats'.*not JSON"):
        load(_write(tmp_path / "deep.npz", deep))


def test_json_stats_keep_their_types(files, tmp_path):
    _, a = files["arrow"]
    stats = json.loads(str(a["stats"]))
    assert stats["convex"] is False
    bad = dict(a, stats=np.asarray(json.dumps(dict(stats, convex="no"))))
    with pytest.raises(ValueError, match="bad.npz.*'stats'.*'convex' must be true or false"):
        load(_write(tmp_path / "bad.npz", bad))
