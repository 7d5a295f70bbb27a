"""Saving and loading partitions, and GeoJSON export.

The checks lean on facts the engine does not compute: torch's forward pass
(patterns and outputs at sample points), shapely's polygon areas, and the
bits of the patterns decoded from their hex strings by Python's int().
"""
import json
import zipfile

import numpy as np
import pytest
import shapely
import torch

import regions
from regions.io import FORMAT, VERSION, load, pattern_hex, save, to_geojson
from regions.partition import pack_patterns


def _sequential(sizes, seed, leaky=None):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(leaky) if leaky else torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_patterns_outputs(model, x):
    """Activation pattern (z > 0 per hidden neuron, layer-major) and output, by torch."""
    a = torch.as_tensor(x, dtype=torch.float64)
    bits = []
    with torch.no_grad():
        for m in model:
            a = m(a)
            if isinstance(m, torch.nn.Linear) and m is not model[-1]:
                bits.append((a > 0).numpy())
    return np.concatenate(bits, axis=1), a.numpy()


def _assert_same_arrays(p, q):
    assert type(q) is type(p)
    assert len(q) == len(p) and q.dim == p.dim
    np.testing.assert_array_equal(q.packed_patterns, p.packed_patterns)
    np.testing.assert_array_equal(q.patterns, p.patterns)
    np.testing.assert_array_equal(q.measure, p.measure)
    for a, b in zip(q.affine, p.affine):
        np.testing.assert_array_equal(a, b)
    names = (["breakpoints", "intervals"] if p.dim == 1
             else ["vertices", "face_offsets", "face_vertices", "edges", "face_edges"])
    for name in names:
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    for Wq, Wp in zip(q.network.weights, p.network.weights):
        np.testing.assert_array_equal(Wq, Wp)
    for bq, bp in zip(q.network.biases, p.network.biases):
        np.testing.assert_array_equal(bq, bp)
    np.testing.assert_array_equal(q.network.slopes, p.network.slopes)
    assert type(q.domain) is type(p.domain)
    np.testing.assert_array_equal(q.domain.origin, p.domain.origin)
    np.testing.assert_array_equal(q.domain.basis, p.domain.basis)
    assert repr(q.domain) == repr(p.domain)


def test_round_trip_2d_box_agrees_with_torch(tmp_path):
    model = _sequential([2, 12, 12, 2], seed=0)
    p = regions.partition(model, ((-2, 2), (-1.5, 1)))
    path = save(p, tmp_path / "p.npz")
    q = regions.load(path)
    _assert_same_arrays(p, q)

    rng = np.random.default_rng(1)
    x = rng.uniform([-2, -1.5], [2, 1], size=(2000, 2))
    r = q.locate(x)
    np.testing.assert_array_equal(r, p.locate(x))
    assert np.all(r >= 0)
    bits, out = _torch_patterns_outputs(model, x)
    np.testing.assert_array_equal(q.patterns[r], bits)
    A, c = q.affine
    np.testing.assert_allclose(np.einsum("mod,md->mo", A[r], x) + c[r], out, atol=1e-9)
    # outside the domain: -1 after loading too
    np.testing.assert_array_equal(q.locate([[5.0, 0.0], [0.0, -3.0]]), [-1, -1])


def test_round_trip_1d_leaky(tmp_path):
    model = _sequential([1, 10, 10, 1], seed=2, leaky=0.1)
    p = regions.partition(model, (-3, 2))
    q = load(save(p, tmp_path / "line.npz"))
    _assert_same_arrays(p, q)
    assert q.network.slopes.tolist() == [0.1, 0.1]
    t = np.linspace(-3, 2, 501)[1:-1]
    r = q.locate(t)
    np.testing.assert_array_equal(r, p.locate(t))
    bits, _ = _torch_patterns_outputs(model, t[:, None])
    on_breakpoint = np.isin(t, q.breakpoints)
    np.testing.assert_array_equal(q.patterns[r][~on_breakpoint], bits[~on_breakpoint])


@pytest.mark.parametrize("kind", ["segment", "plane", "polygon"])
def test_round_trip_other_domains(tmp_path, kind):
    if kind == "segment":
        model = _sequential([3, 8, 8, 1], seed=3)
        domain = regions.Segment([-1, 0, 1], [1, 2, -1])
    elif kind == "plane":
        model = _sequential([3, 8, 8, 1], seed=4)
        domain = regions.Plane(origin=[0, 0, 0], directions=([1, 0, 1], [0, 1, -1]),
                               box=((-1, 1), (-2, 2)))
    else:
        model = _sequential([2, 8, 8, 1], seed=5)
        domain = shapely.Polygon([(-2, -2), (2, -2), (2.5, 0.5), (0, 2), (-2, 1)])  # a pentagon
    p = regions.partition(model, domain)
    q = load(save(p, tmp_path / f"{kind}.npz"))
    _assert_same_arrays(p, q)
    if kind == "polygon":
        assert q.domain.polygon.equals(p.domain.polygon)
        pts = np.random.default_rng(0).uniform(-2, 2, size=(500, 2))
        np.testing.assert_array_equal(q.locate(pts), p.locate(pts))


def test_save_adds_suffix_and_file_is_plain_arrays(tmp_path):
    p = regions.partition(_sequential([2, 4, 1], seed=0), ((-1, 1), (-1, 1)))
    path = save(p, tmp_path / "noext")
    assert path.name == "noext.npz" and path.exists()
    with np.load(path, allow_pickle=False) as z:  # no pickles inside
        # a plain MLP's file has no version 2 field and stays readable by version 1 readers
        assert str(z["format"]) == FORMAT and int(z["version"]) == 1 < VERSION
        assert not {"net.carried", "net.max_trees"} & set(z.files)
        assert str(z["class"]).endswith(":Partition2D")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(tmp_path / "nope.npz")

    other = tmp_path / "other.npz"
    np.savez(other, W0=np.eye(2))
    with pytest.raises(ValueError, match="other.npz.*not a regions partition file"):
        load(other)

    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz.*not a regions partition file"):
        load(text)

    p = regions.partition(_sequential([2, 4, 1], seed=0), ((-1, 1), (-1, 1)))
    good = save(p, tmp_path / "good.npz")
    with np.load(good) as z:
        arrays = dict(z)
    arrays["version"] = np.int64(VERSION + 1)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ValueError, match=rf"newer.npz.*version {VERSION + 1}"):
        load(newer)

    arrays["version"] = np.int64(VERSION)
    arrays["class"] = np.asarray("regions.nothing:Partition9D")
    odd = tmp_path / "odd.npz"
    np.savez(odd, **arrays)
    with pytest.raises(ValueError, match="odd.npz.*'class'.*Partition9D.*accepted: "
                                         "regions.partition1d:Partition1D, "
                                         "regions.partition2d:Partition2D, "
                                         "regions.encoded:EncodedPartition1D"):
        load(odd)
    assert zipfile.is_zipfile(good)


def test_pattern_hex_is_the_integer_of_the_bits():
    rng = np.random.default_rng(0)
    for n_hidden in (1, 5, 64, 65, 130):
        bits = rng.random((20, n_hidden)) < 0.5
        hexes = pattern_hex(pack_patterns(bits), n_hidden)
        for row, h in zip(bits, hexes):
            assert len(h) == (n_hidden + 3) // 4
            value = int(h, 16)
            assert [(value >> k) & 1 for k in range(n_hidden)] == row.astype(int).tolist()
            assert value >> n_hidden == 0


def test_geojson_areas_patterns_and_tiling(tmp_path):
    model = _sequential([2, 10, 10, 1], seed=6)
    p = regions.partition(model, ((-2, 2), (-1, 3)))
    path = tmp_path / "p.geojson"
    collection = to_geojson(p, path)
    on_disk = json.loads(path.read_text())
    assert on_disk["type"] == "FeatureCollection"
    assert len(on_disk["features"]) == len(p)

    polys = [shapely.geometry.shape(f["geometry"]) for f in on_disk["features"]]
    assert all(poly.is_valid for poly in polys)
    areas = np.array([poly.area for poly in polys])
    np.testing.assert_allclose(areas, p.measure, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose([f["properties"]["area"] for f in on_disk["features"]],
                               p.measure, rtol=0)
    # the polygons tile the box
    assert abs(shapely.union_all(polys).area - 16.0) < 1e-9
    # exterior rings are counter-clockwise and closed (RFC 7946)
    for f in on_disk["features"][:50]:
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1]
        assert shapely.LinearRing(ring).is_ccw
    # pattern property = torch's pattern at a point inside the polygon
    pts = np.array([[pt.x, pt.y] for pt in (poly.representative_point() for poly in polys)])
    bits, _ = _torch_patterns_outputs(model, pts)
    for f, row in zip(on_disk["features"], bits):
        value = int(f["properties"]["pattern"], 16)
        assert [(value >> k) & 1 for k in range(p.n_hidden)] == row.astype(int).tolist()
        assert f["properties"]["region"] == f["id"]
    assert collection["features"][0] == on_disk["features"][0]


def test_geojson_refuses_1d():
    p = regions.partition(_sequential([1, 4, 1], seed=0), (-1, 1))
    with pytest.raises(ValueError, match="2D partition"):
        to_geojson(p)


# ------------------------------------------------------------ encoded 1D and non-convex 2D

def _encoded(enc, widths, seed):
    torch.manual_seed(seed)
    mods, n = [enc], enc.out_features
    for i, w in enumerate(widths):
        mods.append(torch.nn.Linear(n, w, dtype=torch.float64))
        if i < len(widths) - 1:
            mods.append(torch.nn.ReLU())
        n = w
    return torch.nn.Sequential(*mods)


def _torch_encoded(model, x):
    """Patterns and output of an encoded Sequential by torch (encoding included)."""
    h = torch.as_tensor(np.asarray(x, dtype=np.float64))
    bits = []
    with torch.no_grad():
        for i, m in enumerate(model):
            h = m(h)
            if isinstance(m, torch.nn.Linear) and i + 1 < len(model):
                bits.append((h > 0).numpy())
    return np.concatenate(bits, axis=1), h.numpy()


@pytest.mark.parametrize("case", ["pe", "rff_state_dict", "pe2d_interval", "pe2d_segment"])
def test_round_trip_encoded_1d(tmp_path, case):
    from regions.encoded import EncodedPartition1D

    if case == "pe":
        model = _encoded(regions.PositionalEncoding(5), [16, 16, 2], 0)
        source, domain = model, (0.0, 1.0)
    elif case == "rff_state_dict":
        model = _encoded(regions.RandomFourierFeatures(1, 6, 2.0, seed=3, include_input=True),
                         [12, 12, 1], 1)
        source, domain = model.state_dict(), (-1.0, 1.0)
    elif case == "pe2d_interval":
        # a horizontal line y = 0.3 of a 2D coordinate, as grid_crossings builds it
        model = _encoded(regions.PositionalEncoding(3, in_features=2), [12, 12, 1], 2)
        source, domain = model, regions.Interval(0.0, 1.0, origin=[0.0, 0.3], basis=[[1.0], [0.0]])
    else:
        model = _encoded(regions.PositionalEncoding(3, in_features=2), [12, 12, 1], 3)
        source, domain = model, regions.Segment([0.1, 0.9], [0.7, 0.05])
    p = regions.partition(source, domain, progress=False)
    assert isinstance(p, EncodedPartition1D) and len(p) > 20
    q = load(save(p, tmp_path / "enc.npz"))
    _assert_same_arrays(p, q)
    for name in ("points", "midpoints", "pattern_id", "kinds", "alpha", "beta"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    assert q.n_patterns == p.n_patterns and q.stats == p.stats
    assert q.affine[0].shape == (len(p), p.network.output_dim, p.network.encoding.out_features)
    for a, b in zip(q.network.encoding.feature_spec(), p.network.encoding.feature_spec()):
        np.testing.assert_array_equal(a, b)
    lo, hi = p.points[0], p.points[-1]
    t = np.random.default_rng(4).uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 4000)
    r = q.locate(t)
    np.testing.assert_array_equal(r, p.locate(t))
    inside = (t >= lo) & (t <= hi)
    assert np.all(r[~inside] == -1) and np.all(r[inside] >= 0)
    np.testing.assert_array_equal(q.evaluate(t), p.evaluate(t))
    np.testing.assert_array_equal(q.encode(t), p.encode(t))
    for output in range(p.network.output_dim):
        value = float(np.median(p.evaluate(p.midpoints)[:, output]))
        ls = q.level_set(value, output)
        assert len(ls) > 0
        np.testing.assert_array_equal(ls, p.level_set(value, output))
    # the loaded partition against torch at the sample points
    x = q.domain.origin + t[inside, None] * q.domain.basis[:, 0]
    bits, out = _torch_encoded(model, x)
    np.testing.assert_array_equal(q.patterns[r[inside]], bits)
    np.testing.assert_allclose(q.evaluate(t[inside]), out, atol=1e-9)
    # the encoding of the loaded network computes the same features
    np.testing.assert_array_equal(q.network.encoding.encode_numpy(x), model[0].encode_numpy(x))


def test_round_trip_nonconvex_polygon(tmp_path):
    model = _sequential([2, 12, 12, 2], seed=7)
    # an arrow: non-convex (reflex vertex at (0, 0.5)), so regions get clipped into
    # non-convex pieces and the engine merges its convex parts
    poly = shapely.Polygon([(-2, -2), (2, -2), (2, 2), (0, 0.5), (-2, 2)])
    p = regions.partition(model, poly, progress=False)
    assert not p.convex
    q = load(save(p, tmp_path / "arrow.npz"))
    _assert_same_arrays(p, q)
    assert not q.convex and q.stats == p.stats
    assert q.domain.polygon.equals(p.domain.polygon)
    for name in ("vertex_values", "centroids", "perimeters", "edge_faces", "inradius",
                 "chebyshev_centers"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    assert (q.adjacency() != p.adjacency()).nnz == 0
    np.testing.assert_array_equal(q.level_set(0.1), p.level_set(0.1))
    np.testing.assert_array_equal(q.level_set(-0.2, output=1), p.level_set(-0.2, output=1))
    # regions tile the arrow and nothing else
    assert abs(shapely.union_all(q.polygons()).area - poly.area) < 1e-9
    pts = np.random.default_rng(5).uniform(-2.5, 2.5, size=(4000, 2))
    r = q.locate(pts)
    np.testing.assert_array_equal(r, p.locate(pts))
    inside = shapely.covers(poly, shapely.points(pts))
    assert np.all(r[~inside] == -1) and np.all(r[inside] >= 0)
    assert np.any(~inside & (pts[:, 1] > 0.5) & (np.abs(pts[:, 0]) < 0.5))  # the notch
    bits, out = _torch_patterns_outputs(model, pts[inside])
    np.testing.assert_array_equal(q.patterns[r[inside]], bits)
    A, c = q.affine
    np.testing.assert_allclose(np.einsum("mod,md->mo", A[r[inside]], pts[inside]) + c[r[inside]],
                               out, atol=1e-9)


def test_encoded_file_without_its_feature_table_is_refused(tmp_path):
    model = _encoded(regions.PositionalEncoding(2), [4, 1], 0)
    path = save(regions.partition(model, (0.0, 1.0), progress=False), tmp_path / "enc.npz")
    with np.load(path) as z:
        arrays = dict(z)
    del arrays["enc.omegas"]
    cut = tmp_path / "cut.npz"
    np.savez(cut, **arrays)
    with pytest.raises(ValueError, match="cut.npz.*encoding is incomplete.*enc.omegas"):
        load(cut)
