"""Figures come from real partitions and carry the artists the pictures depend on.

The pictures themselves are judged by eye (the notebooks draw every kind); these tests pin
the structure: one PolyCollection with a path per region, pattern colours that
follow the pattern and not the partition, a LineCollection for the level set,
colour bars for value colourings, and files that open.
"""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection, PathCollection, PolyCollection, QuadMesh

import regions
import regions.plot as rp
from regions.plot.colors import pattern_colors


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).double()


@pytest.fixture(scope="module")
def p2():
    return regions.partition(mlp([2, 12, 12, 1]), ((-2, 2), (-2, 2)))


@pytest.fixture(scope="module")
def p1():
    return regions.partition(mlp([1, 16, 16, 1], seed=1), (-2.0, 2.0))


def collection(ax, cls, gid):
    found = [c for c in ax.collections if isinstance(c, cls) and c.get_gid() == gid]
    assert len(found) == 1, f"expected one {cls.__name__} {gid!r}, found {len(found)}"
    return found[0]


def patterns_as_keys(p):
    return [row.tobytes() for row in np.asarray(p.packed_patterns)]


def test_2d_regions_are_one_polycollection_with_a_path_per_region(p2):
    ax = rp.partition(p2)
    pc = collection(ax, PolyCollection, "regions")
    assert len(pc.get_paths()) == len(p2)
    assert ax.get_aspect() == 1.0
    assert ax.get_xlim() == (-2.0, 2.0) and ax.get_ylim() == (-2.0, 2.0)
    np.testing.assert_allclose(pc.get_facecolors(), pattern_colors(p2.packed_patterns))
    # each path holds its region's vertices (counter-clockwise CSR faces)
    r = len(p2) // 2
    verts = p2.vertices[p2.face_vertices[p2.face_offsets[r]:p2.face_offsets[r + 1]]]
    np.testing.assert_allclose(pc.get_paths()[r].vertices[:len(verts)], verts)
    # the figure is reachable for `--plot FILE`
    assert ax.figure is not None and len(ax.figure.axes) == 1


def test_pattern_colour_is_stable_across_partitions():
    # the same network over two overlapping domains, and a slightly trained copy:
    # a pattern present in both gets the same RGBA in both pictures
    net = mlp([2, 10, 10, 1], seed=3)
    a = regions.partition(net, ((-2, 2), (-2, 2)))
    b = regions.partition(net, ((-1, 3), (-1, 1)))
    moved = mlp([2, 10, 10, 1], seed=3)
    with torch.no_grad():
        for prm in moved.parameters():
            prm.add_(0.01 * torch.randn_like(prm))
    c = regions.partition(moved, ((-2, 2), (-2, 2)))
    colours = {}
    for p in (a, b, c):
        pc = collection(rp.partition(p), PolyCollection, "regions")
        for key, rgba in zip(patterns_as_keys(p), pc.get_facecolors()):
            colours.setdefault(key, []).append(tuple(rgba))
    shared = [v for v in colours.values() if len(v) > 1]
    assert len(shared) >= 10
    assert all(len(set(v)) == 1 for v in shared)
    # and different patterns get different colours (no collisions among these)
    distinct = {v[0] for v in colours.values()}
    assert len(distinct) == len(colours)


def test_level_set_points_and_value_colouring(p2):
    pts = np.random.default_rng(0).uniform(-2, 2, (50, 2))
    A, c = p2.affine
    centre_values = np.einsum("rd,rd->r", A[:, 0], p2.centroids) + c[:, 0]
    level = float(np.median(centre_values))     # a level the output crosses
    ax = rp.partition(p2, color="output", level_set=level, points=pts)
    lc = collection(ax, LineCollection, "level_set")
    segs = p2.level_set(level)
    assert len(lc.get_segments()) == len(segs) > 0
    np.testing.assert_allclose(np.asarray(lc.get_segments()), segs)
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatter) == 1 and scatter[0].get_offsets().shape == (50, 2)
    pc = collection(ax, PolyCollection, "regions")
    np.testing.assert_allclose(pc.get_array(), centre_values)
    assert len(ax.figure.axes) == 2            # the colour bar
    assert pc.norm.vmin == -pc.norm.vmax       # centred at zero


@pytest.mark.parametrize("what", ["area", "inradius", "slope"])
def test_named_values_get_a_colour_bar(p2, what):
    ax = rp.partition(p2, color=what)
    pc = collection(ax, PolyCollection, "regions")
    assert pc.get_array().shape == (len(p2),)
    assert len(ax.figure.axes) == 2


def test_array_colouring_checks_its_length(p2):
    ax = rp.partition(p2, color=np.arange(len(p2)), colorbar=False)
    np.testing.assert_array_equal(collection(ax, PolyCollection, "regions").get_array(),
                                  np.arange(len(p2)))
    with pytest.raises(ValueError, match="one value per region"):
        rp.partition(p2, color=np.arange(len(p2) + 1))
    with pytest.raises(ValueError, match="unknown region value"):
        rp.partition(p2, color="beauty")


def test_1d_pieces_output_and_signal(p1):
    t = np.linspace(-2, 2, 64)
    ax = rp.partition(p1, signal=(t, np.sin(t)), level_set=0.0, points=t)
    pc = collection(ax, PolyCollection, "pieces")
    assert len(pc.get_paths()) == len(p1)
    np.testing.assert_allclose(pc.get_facecolors()[:, :3], pattern_colors(p1.packed_patterns)[:, :3])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "network output" in labels and "signal" in labels and "samples" in labels
    # the drawn output is the network's output (exact at the breakpoints)
    out = next(l for l in ax.get_lines() if l.get_label() == "network output")
    x, y = out.get_data()
    want = p1.network.forward(p1.domain.to_input(x))[:, 0]
    np.testing.assert_allclose(y, want)
    assert set(p1.breakpoints) <= set(x)


def test_density_map_is_one_over_the_area_of_the_region_at_each_point(p2):
    ax = rp.density_map(p2, resolution=40)
    mesh = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(mesh) == 1 and ax.get_aspect() == 1.0
    dens = np.asarray(mesh[0].get_array()).reshape(40, 40)
    centres = np.linspace(-2, 2, 41)[:-1] + 0.05
    gx, gy = np.meshgrid(centres, centres)
    r = p2.locate(np.column_stack([gx.ravel(), gy.ravel()]))
    np.testing.assert_allclose(dens.ravel(), 1.0 / p2.measure[r])
    ax1 = rp.density_map(regions.partition(mlp([1, 8, 1]), (0.0, 1.0)))
    assert ax1.get_yscale() == "log"


def test_region_sizes_exact_beside_sampled(p2):
    g = np.linspace(-2, 2, 40)
    pts = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    count, pattern_id = regions.sampled_patterns(p2.network, pts)
    axes = rp.region_sizes(p2, sampled=(count, pattern_id))
    assert len(axes) == 2
    exact_bars, sampled_bars = axes[0].patches, [b for b in axes[1].patches if b.get_fill()]
    assert sum(b.get_height() for b in exact_bars) == len(p2)
    assert sum(b.get_height() for b in sampled_bars) == count
    assert f"{len(p2):,} regions" in axes[0].get_title()
    assert "lower bound" in axes[1].get_title()


def test_region_count_over_training():
    ax = rp.region_count({"raw": {0: 100, 10: 150, 20: 180}, "PE": ([0, 10, 20], [400, 500, 520])},
                         sampled={"raw": {0: 90, 10: 120, 20: 140}})
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_array_equal(lines[1].get_ydata(), [90, 120, 140])
    assert ax.get_xlabel() == "epoch"


def test_region_count_draws_runs_with_only_sampled_counts_in_their_colour():
    # an encoded 2D run has no exact count: its sampled count is drawn alone
    ax = rp.region_count({"raw": ([0, 10], [100, 150])},
                         sampled={"raw": ([0, 10], [90, 120]), "PE": ([0, 10], [300, 310])},
                         colors={"PE": "red"})
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_array_equal(lines[2].get_ydata(), [300, 310])
    assert lines[2].get_color() == "red" and lines[0].get_color() == "C0"
    assert "PE, sampled (lower bound)" in [t.get_text() for t in ax.get_legend().get_texts()]
    ax = rp.region_count({}, sampled={"PE": ([0, 10], [300, 310])})
    assert len(ax.get_lines()) == 1


def test_speed_vs_feature_on_given_axes_and_a_constant_feature():
    rng = np.random.default_rng(1)
    fig, axes = plt.subplots(2, 4)
    speed = rng.normal(size=100)
    feats = {"a": rng.random(100), "b": rng.random(100), "c": rng.random(100),
             "const": np.ones(100)}
    for row in axes:
        rp.speed_vs_feature(feats, speed, axes=row, speed_label="rate")
    # one y label per row, on its first panel (not every ncols-th panel)
    assert [a.get_ylabel() for a in axes.ravel()] == ["rate", "", "", ""] * 2
    assert "constant feature" in axes[0, 3].get_title() and "nan" not in axes[0, 3].get_title()


def test_band_energy_colour_scale_ignores_a_short_spike():
    energy = np.full((200, 3), 0.5)
    energy[0] = 5.0                                  # one early epoch far above the rest
    axes = rp.band_energy(energy)
    mesh = next(c for c in axes[0].collections if isinstance(c, QuadMesh))
    assert mesh.norm.vmax == 1.0
    assert rp.band_energy(energy, kind="lines")[0].get_ylim()[1] >= 5.0


def test_coupling_figures():
    rng = np.random.default_rng(0)
    n = 500
    area = rng.lognormal(-6, 1.5, n)
    speed = 100 + 30 * np.log(area) + rng.normal(0, 10, n)
    axes = rp.speed_vs_feature({"region area": area, "occupancy": rng.integers(1, 9, n)}, speed,
                               censored=rng.random(n) < 0.05)
    assert len(axes) == 2 and "Spearman" in axes[0].get_title()
    assert axes[0].get_xscale() == "log"
    energy = np.clip(np.linspace(1, 0, 20)[:, None] ** (1 / np.arange(1, 15)), 0, 1)
    axes = rp.band_energy({"raw": energy, "PE L=5": energy ** 3}, epochs=np.arange(0, 200, 10),
                              bands=np.arange(5, 75, 5))
    assert len(axes) == 2 and all(any(isinstance(c, QuadMesh) for c in a.collections) for a in axes)
    axes = rp.band_energy(energy, kind="lines")
    assert len(axes[0].get_lines()) == 14
    # runs with their own epochs, bands given as edges
    edges = np.column_stack([np.arange(14) * 5.0, np.arange(1, 15) * 5.0])
    axes = rp.band_energy({"a": (np.arange(20), energy), "b": (np.arange(10) * 2, energy[:10])},
                              bands=edges)
    assert axes[0].get_yticklabels()[0].get_text() == "0-5"
    ax = rp.confusion_densities(rng.uniform(-1, 1, 300), rng.normal(0, 0.2, 300))
    assert any("below -0.5" in t.get_text() for t in ax.get_legend().get_texts())


def test_animation_writes_a_gif_with_a_frame_per_checkpoint(tmp_path):
    from PIL import Image

    net = mlp([2, 8, 8, 1])
    parts = {}
    for epoch in (0, 1, 2):
        parts[epoch] = regions.partition(net, ((-2, 2), (-2, 2)))
        with torch.no_grad():
            for prm in net.parameters():
                prm.add_(0.05 * torch.randn_like(prm))
    path = rp.animate(parts, tmp_path / "walk.gif", dpi=40, level_set=0.0)
    with Image.open(path) as gif:
        assert gif.n_frames == 3


def test_encoded_1d_pieces_sharing_a_pattern_share_a_row_and_a_colour(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(regions.PositionalEncoding(3), torch.nn.Linear(6, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).double()
    p = regions.partition(net, (0.0, 4.0))        # PE has period 2: every pattern comes back
    assert len(p) > p.pattern_id.max() + 1
    ax = rp.partition(p)
    pieces = collection(ax, PolyCollection, "pieces").get_facecolors()
    row_axes = [a for a in ax.figure.axes if a is not ax]
    assert len(row_axes) == 1 and row_axes[0].get_ylabel() == "pattern id"
    rows = collection(row_axes[0], LineCollection, "pattern_rows")
    heights = np.array([seg[0, 1] for seg in rows.get_segments()])
    np.testing.assert_array_equal(heights, p.pattern_id)
    for k in np.unique(p.pattern_id):
        same = pieces[p.pattern_id == k]
        assert np.all(same == same[0])
    # the output curve follows the encoded network between breakpoints
    out = next(l for l in ax.get_lines() if l.get_label() == "network output")
    x, y = out.get_data()
    with torch.no_grad():
        want = net(torch.as_tensor(x[:, None])).numpy()[:, 0]
    np.testing.assert_allclose(y, want, atol=1e-12)
    # an animation keeps the rows in their own axes inside the figure
    from PIL import Image

    with Image.open(rp.animate([p, p], tmp_path / "pieces.gif", dpi=30)) as gif:
        assert gif.n_frames == 2


def _oval_partition():
    """PE(1) -> one neuron sin(pi x) + sin(pi y) - 1.5 -> 1: an oval face around
    (0.5, 0.5) inside a face with a hole."""
    lin = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64))
        lin.bias.fill_(-1.5)
    model = torch.nn.Sequential(regions.PositionalEncoding(1, in_features=2), lin, torch.nn.ReLU(),
                                torch.nn.Linear(1, 1).double())
    return regions.partition(model, ((0.0, 1.0), (0.0, 1.0)))


def test_curved_faces_are_drawn_with_their_holes():
    p = _oval_partition()
    assert len(p) == 2
    ax = rp.partition(p)
    pc = collection(ax, PathCollection, "regions")
    paths = pc.get_paths()
    assert len(paths) == 2
    from matplotlib.path import Path
    starts = sorted(int((path.codes == Path.MOVETO).sum()) for path in paths)
    assert starts == [1, 2]                            # the oval, and the square around it
    # what is filled is the face itself: rendered, the centre has the oval's colour
    # and a corner the outer face's (its hole leaves the oval's colour visible)
    fig = ax.figure
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    colours = pc.get_facecolors()

    def pixel(x, y):
        px, py = ax.transData.transform((x, y))
        return rgba[int(round(rgba.shape[0] - py)), int(round(px)), :3] / 255.0

    def nearest_face(c):
        return int(np.argmin(np.abs(colours[:, :3] - c).sum(axis=1)))

    inside = [int(path.codes is not None and (path.codes == Path.MOVETO).sum() == 1)
              for path in paths].index(1)          # the oval's path: one ring
    assert nearest_face(pixel(0.5, 0.5)) == inside
    assert nearest_face(pixel(0.05, 0.05)) == 1 - inside
    inside = [i == inside for i in range(2)]
    # the oval's filled area is the face's (a measure of the path, not of shapely)
    oval = paths[inside.index(True)].vertices
    x, y = oval[:, 0], oval[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    lo, hi = p.measure_bounds[p.locate(np.array([[0.5, 0.5]]))[0]]
    assert lo <= area <= hi
    ax = rp.partition(p, color="output")                # values from a point inside each face
    # the level set is drawn from the certified polylines, one line each
    level = float(np.median(p.evaluate(np.random.default_rng(0).random((400, 2)))))
    ax = rp.partition(p, level_set=level)
    lc = collection(ax, LineCollection, "level_set")
    want = p.level_set(level)
    assert len(lc.get_segments()) == len(want.geoms) > 0
    for got, line in zip(lc.get_segments(), want.geoms):
        np.testing.assert_array_equal(got, np.asarray(line.coords))


def test_encoded_1d_pieces_with_patterns_of_their_own_get_no_pattern_rows():
    torch.manual_seed(0)
    net = torch.nn.Sequential(regions.PositionalEncoding(3), torch.nn.Linear(6, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 1)).double()
    p = regions.partition(net, (0.0, 0.25))       # a short stretch: no pattern comes back
    assert len(np.unique(p.pattern_id)) == len(p) > 3
    ax = rp.partition(p)
    assert [a for a in ax.figure.axes if a is not ax] == []        # no diagonal of ids
    assert "each with a pattern of its own" in ax.get_title()
