"""What the engines are handed: the model read once, the slice composed once,
and networks whose values could overflow float64 refused before any engine runs.

The conversion counts are measured by wrapping :func:`regions.network.as_network`
(wherever a module bound it) and :meth:`regions.Network.sliced`; the range check
against networks that overflowed (issue 9: ``W = 1e308``, ``1e200`` in two
layers, a tiny domain with steep slopes), which partitioned before with only
numpy warnings and wrong regions, and against large but safe ones, whose
partitions must cover the domain with no warning at all.
"""
import sys
import warnings

import numpy as np
import pytest
import shapely
import torch

import regions
from regions import network as network_module
from regions.encoded import engine as encoded_engine
from regions.encoded import partition_encoded_1d, partition_encoded_segment
from regions.network import Network, as_network


@pytest.fixture
def counts(monkeypatch):
    """Count calls of ``as_network``, ``Network.sliced`` and the encoded line composition."""
    seen = {"as_network": 0, "sliced": 0, "line_features": 0}
    original_as_network = network_module.as_network
    original_sliced = Network.sliced
    original_line_features = encoded_engine._line_features

    def counting_as_network(model):
        seen["as_network"] += 1
        return original_as_network(model)

    def counting_sliced(self, origin, basis):
        seen["sliced"] += 1
        return original_sliced(self, origin, basis)

    def counting_line_features(*args):
        seen["line_features"] += 1
        return original_line_features(*args)

    # every module that bound the function at import, and the module itself (for
    # imports inside functions)
    for name, module in list(sys.modules.items()):
        if name.startswith("regions") and getattr(module, "as_network", None) is original_as_network:
            monkeypatch.setattr(module, "as_network", counting_as_network)
    monkeypatch.setattr(Network, "sliced", counting_sliced)
    monkeypatch.setattr(encoded_engine, "_line_features", counting_line_features)
    return seen


def _pairs(widths, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.normal(size=(b, a)), scale * rng.normal(size=b))
            for a, b in zip(widths[:-1], widths[1:])]


def _encoded(in_features=1, seed=0):
    torch.manual_seed(seed)
    pe = regions.PositionalEncoding(2, in_features=in_features)
    return torch.nn.Sequential(pe, torch.nn.Linear(pe.out_features, 6).double(), torch.nn.ReLU(),
                               torch.nn.Linear(6, 1).double())


SQUARE = shapely.Polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)])
NOTCHED = shapely.Polygon([(-1, -1), (1, -1), (1, 1), (0, 0), (-1, 1)])


@pytest.mark.parametrize("make,sliced", [
    (lambda: regions.partition(_pairs([1, 8, 8, 1]), (-1, 1), progress=False), 0),
    (lambda: regions.partition(_pairs([2, 8, 8, 1]), ((-1, 1), (-1, 1)), progress=False), 0),
    (lambda: regions.partition(_pairs([2, 8, 1]), NOTCHED, progress=False), 0),
    (lambda: regions.partition(_pairs([3, 8, 8, 1]), regions.Segment([0, 0, 0], [1, 1, -1]),
                               progress=False), 1),
    (lambda: regions.partition(_pairs([3, 8, 8, 1]),
                               regions.Plane(points=[[0, 0, 0], [1, 0, 1], [0, 1, 1]]),
                               progress=False), 1),
    (lambda: regions.partition(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(),
                                                   torch.nn.Linear(8, 1)), SQUARE,
                               progress=False), 0),
], ids=["1D", "2D box", "2D non-convex", "Segment", "Plane", "torch 2D"])
def test_raw_paths_read_the_model_once_and_slice_at_most_once(counts, make, sliced):
    make()
    assert counts["as_network"] == 1
    assert counts["sliced"] == sliced


@pytest.mark.parametrize("make", [
    lambda: regions.partition(_encoded(), (0.0, 1.0), progress=False),
    lambda: regions.partition(_encoded(2), regions.Segment([0.0, 0.2], [1.0, 0.7]),
                              progress=False),
    lambda: partition_encoded_1d(_encoded(), (0.0, 1.0), progress=False),
    lambda: partition_encoded_segment(_encoded(2), [0.0, 0.2], [1.0, 0.7], progress=False),
], ids=["partition 1D", "partition Segment", "partition_encoded_1d", "partition_encoded_segment"])
def test_encoded_paths_read_the_model_once_and_compose_the_line_once(counts, make):
    make()
    assert counts["as_network"] == 1
    assert counts["line_features"] == 1
    assert counts["sliced"] == 0          # an encoding is not composed into a layer


def test_grid_crossings_reads_the_model_once(counts):
    regions.grid_crossings(_encoded(2), shape=(3, 3), progress=False)
    assert counts["as_network"] == 1
    assert counts["line_features"] == 6   # one composition per grid line


def test_the_engines_take_a_network_not_a_model():
    from regions.partition1d import partition_1d

    with pytest.raises(TypeError, match="regions.Network.*regions.partition"):
        partition_1d(_pairs([1, 4, 1]), regions.Interval(-1, 1))


# ---- networks whose values overflow float64 over the domain ------------------

def _signed(n, value):
    return np.array([[value], [-value]] * (n // 2))


OVERFLOWING = {
    # W = 1e308 in the first layer of a 2D net: |W| max|x| sums past float64's max
    "1e308 in 2D": ([(np.full((4, 2), 1e308), np.zeros(4)), (np.ones((1, 4)), np.zeros(1))],
                    ((-1, 1), (-1, 1)), r"affine layer 1 of 2 \(hidden, from pair 0\).*"
                                        r"pre-activations of magnitude inf"),
    "1e200 in two layers, 2D": ([(np.full((4, 2), 1e200) * [[1], [-1], [1], [-1]], np.arange(4.0)),
                                 (np.full((4, 4), 1e200), np.zeros(4)),
                                 (np.ones((1, 4)), np.zeros(1))],
                                ((-1, 1), (-1, 1)), r"affine layer 2 of 3 .*pre-activations"),
    "1e200 in two layers, 1D": ([(_signed(4, 1e200), np.arange(4.0)),
                                 (np.full((4, 4), 1e200), np.zeros(4)),
                                 (np.ones((1, 4)), np.zeros(1))],
                                (-1, 1), r"affine layer 2 of 3 .*pre-activations"),
    "1e160 output, 1D": ([(_signed(2, 1e150), np.zeros(2)), (np.full((1, 2), 1e160), np.zeros(1))],
                         (-1, 1), r"affine layer 2 of 2 \(the output layer, from pair 1\)"),
    # values stay near 1e150 but the slopes along a domain 1e-200 long reach 1e350
    "steep on a tiny interval": ([(_signed(2, 1e250), np.array([0.0, 1e-60])),
                                  (np.full((2, 2), 1e100), np.zeros(2)),
                                  (np.ones((1, 2)), np.zeros(1))],
                                 (0, 1e-200), r"affine layer 2 of 3 .*slopes along the domain"),
    "1e200 in two layers on a Segment": ([(np.full((4, 3), 1e200) * [[1], [-1], [1], [-1]],
                                           np.arange(4.0)),
                                          (np.full((4, 4), 1e200), np.zeros(4)),
                                          (np.ones((1, 4)), np.zeros(1))],
                                         regions.Segment([0, 0, 0], [1, 1, 1]),
                                         r"affine layer 2 of 3"),
}


@pytest.mark.parametrize("case", OVERFLOWING, ids=list(OVERFLOWING))
def test_overflowing_networks_are_refused_before_any_engine_runs(case):
    model, domain, message = OVERFLOWING[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # and no numpy overflow warning first
        with pytest.raises(ValueError, match=message + r".*within 1e\+300"):
            regions.partition(model, domain, progress=False)


def test_an_overflowing_encoded_network_is_refused():
    model = _encoded()
    with torch.no_grad():
        model[1].weight.fill_(1e200)
        model[3].weight.fill_(1e200)
    for call in (lambda: regions.partition(model, (0.0, 1.0), progress=False),
                 lambda: partition_encoded_1d(model, (0.0, 1.0), progress=False),
                 lambda: regions.grid_crossings(_as_2d(model), shape=(2, 2), progress=False)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=r"affine layer 2 of 2 .*magnitude inf"):
                call()


def _as_2d(model):
    pe = regions.PositionalEncoding(2, in_features=2)
    first = torch.nn.Linear(pe.out_features, 6).double()
    with torch.no_grad():
        first.weight.fill_(float(model[1].weight[0, 0]))
    return torch.nn.Sequential(pe, first, torch.nn.ReLU(), model[3])


def test_the_cli_refuses_an_npz_of_1e308_in_one_line(tmp_path, capsys):
    from regions.cli import main

    path = tmp_path / "huge.npz"
    np.savez(path, W0=np.full((4, 2), 1e308), b0=np.zeros(4), W1=np.ones((1, 4)), b1=np.zeros(1))
    code = main(["enumerate", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "affine layer 1 of 2" in err and "1e+300" in err


# ---- large but safe networks partition without a warning ---------------------

def _assert_patterns_cover_samples(p, model, points):
    """Every pattern torch-free sampling sees at points of the domain is a region's."""
    net = as_network(model)
    x = p.domain.to_input(points)
    seen = {row.tobytes() for row in np.packbits(net.patterns(x), axis=1)}
    have = {row.tobytes() for row in np.packbits(p.patterns, axis=1)}
    assert seen <= have


def test_large_but_safe_weights_partition_a_box_without_warnings():
    rng = np.random.default_rng(1)
    small = _pairs([2, 8, 8, 1], seed=1)
    # z1 * 1e100 and z2 * 1e200: the same neurons scaled by positive factors, so
    # the same regions, with values near 1e200
    scales = [(1e100, 1e100), (1e100, 1e200), (1.0, 1.0)]
    model = [(sw * W, sb * b) for (W, b), (sw, sb) in zip(small, scales)]
    box = ((-1, 1), (-2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = regions.partition(model, box, progress=False)
    reference = regions.partition(small, box, progress=False)
    assert float(p.measure.sum()) == pytest.approx(10.0, rel=1e-12)
    assert len(p) == len(reference)
    assert {r.tobytes() for r in p.packed_patterns} == {r.tobytes() for r in reference.packed_patterns}
    _assert_patterns_cover_samples(p, model, rng.uniform([-1, -2], [1, 3], size=(2000, 2)))


def test_large_but_safe_weights_partition_an_interval_without_warnings():
    rng = np.random.default_rng(2)
    model = [(1e100 * rng.normal(size=(16, 1)), 1e100 * rng.normal(size=16)),
             (1e100 * rng.normal(size=(16, 16)), 1e100 * rng.normal(size=16)),
             (rng.normal(size=(1, 16)), np.zeros(1))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = regions.partition(model, (-3, 3), progress=False)
    assert float(p.measure.sum()) == pytest.approx(6.0, rel=1e-12)
    assert np.all(np.isfinite(p.affine[0])) and np.all(np.isfinite(p.affine[1]))
    _assert_patterns_cover_samples(p, model, rng.uniform(-3, 3, size=(4000, 1)))


def test_large_but_safe_encoded_weights_partition_without_warnings():
    model = _encoded(seed=3)
    with torch.no_grad():
        model[1].weight.mul_(1e100), model[1].bias.mul_(1e100)
        model[3].weight.mul_(1e100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = regions.partition(model, (0.0, 1.0), progress=False)
    assert float(p.measure.sum()) == pytest.approx(1.0, rel=1e-12)
    enc = model[0]
    net = as_network(model)
    u = np.random.default_rng(3).uniform(0, 1, size=(2000, 1))
    seen = {row.tobytes() for row in np.packbits(net.patterns(enc.encode_numpy(u)), axis=1)}
    assert seen <= {row.tobytes() for row in np.packbits(p.patterns, axis=1)}
