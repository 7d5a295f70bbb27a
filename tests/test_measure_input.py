"""``measure_input``: region lengths and areas of a slice in input-space units.

The reference is the geometry itself mapped into input space (distances
between mapped breakpoints; the area of each mapped polygon from the cross
products of its fan triangles), not the domain's scale factor."""
import numpy as np
import pytest

import regions


def _net(n_in, seed):
    rng = np.random.default_rng(seed)
    return regions.as_network([(rng.normal(size=(12, n_in)), rng.normal(size=12)),
                               (rng.normal(size=(8, 12)), rng.normal(size=8)),
                               (rng.normal(size=(1, 8)), rng.normal(size=1))])


def test_segment_lengths_are_input_space_distances():
    p0, p1 = np.array([0.3, -1.0, 2.0]), np.array([-1.5, 0.5, 1.0])
    p = regions.partition(_net(3, 0), regions.Segment(p0, p1))
    assert np.isclose(p.measure.sum(), 1.0)                    # parameter units
    ends = p.domain.to_input(p.points)                         # (n + 1, 3) in input space
    lengths = np.linalg.norm(np.diff(ends, axis=0), axis=1)
    np.testing.assert_allclose(p.measure_input, lengths, rtol=1e-12, atol=0)
    assert np.isclose(p.measure_input.sum(), np.linalg.norm(p1 - p0), rtol=1e-12)
    assert np.isclose(p.domain.measure_input, np.linalg.norm(p1 - p0), rtol=1e-12)


def _area_3d(poly):
    """Area of a planar polygon given by its vertices in 3D (fan of triangles)."""
    v = poly - poly[0]
    return 0.5 * np.linalg.norm(np.cross(v[1:-1], v[2:]).sum(axis=0))


@pytest.mark.parametrize("box", [((0.0, 1.0), (0.0, 1.0)), ((-0.5, 2.0), (1.0, 1.5))])
def test_plane_areas_are_input_space_areas(box):
    a, b, c = np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.5, 2.0])
    p = regions.partition(_net(3, 1), regions.Plane(points=(a, b, c), box=box))
    assert len(p) > 5
    (u0, u1), (v0, v1) = box
    assert np.isclose(p.measure.sum(), (u1 - u0) * (v1 - v0))  # parameter units
    true = np.array([_area_3d(p.domain.to_input(p.region_vertices(r))) for r in range(len(p))])
    np.testing.assert_allclose(p.measure_input, true, rtol=1e-9, atol=0)
    whole = (u1 - u0) * (v1 - v0) * np.linalg.norm(np.cross(b - a, c - a))
    assert np.isclose(p.measure_input.sum(), whole, rtol=1e-12)
    assert np.isclose(p.domain.measure_input, whole, rtol=1e-12)


def test_measure_input_equals_measure_without_a_slice():
    p = regions.partition(_net(2, 2), ((0.0, 2.0), (-1.0, 1.0)))
    np.testing.assert_array_equal(p.measure_input, p.measure)
