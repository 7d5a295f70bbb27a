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
        assert str(z["format"]) == FORMAT and int(z["version"]) == VERSION
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
    with pytest.raises(ValueError, match="Partition9D"):
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
