"""The study end to end (tiny preset), its validation before training, and
running jobs through other executors (serial, dask)."""
import copy
import os
import re

import numpy as np
import pytest
import torch

from regions.study.runner import PRESETS, SerialExecutor, build_jobs, run_study


def _one_experiment(name="2d-raw", encoding=None, seeds=(0,)):
    exp = copy.deepcopy([e for e in PRESETS["tiny"]["experiments"] if e["name"] == "2d-raw"][0])
    exp["name"] = name
    exp["train"]["encoding"] = encoding
    exp["train"]["epochs"] = 20
    return {"experiments": [exp], "seeds": list(seeds), "n_boot": 20, "eps": 0.5,
            "window": 0.25, "n_distant": 50, "name": "one"}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    path = run_study("tiny", str(out), progress=False)  # default: 2 local processes
    return out, path


def test_tiny_study_writes_report_with_sections_figures_and_data(tiny_report):
    out, path = tiny_report
    assert os.path.basename(path) == "report.md" and os.path.isfile(path)
    text = open(path).read()
    for section in ("## Findings", "## Runs", "## The paper's table, measured exactly",
                    "## Regions over training", "## Coupling", "## Gradient confusion",
                    "## Spectral bias", "## Notes"):
        assert section in text, section
    assert re.search(r"\*\*(holds|does not hold)\*\*", text)
    pngs = re.findall(r"\(figures/([a-z_]+\.png)\)", text)
    assert len(pngs) >= 5
    for png in pngs:
        with open(os.path.join(out, "figures", png), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    for data in ("summary.csv", "coupling.csv", "findings.csv", "runs.npz"):
        assert os.path.getsize(os.path.join(out, "data", data)) > 0
    # every run appears in the tables, and the exact region count is there for raw runs
    for name in ("2d-raw", "2d-pe3", "1d-raw", "1d-pe3"):
        assert f"| {name} |" in text


def test_tiny_study_data_are_consistent(tiny_report):
    out, _ = tiny_report
    # every finished job is kept, and the report can be rebuilt from them
    from regions.study.runner import report_from_jobs

    assert len([f for f in os.listdir(os.path.join(out, "jobs")) if f.endswith(".json")]) == 4
    assert "## Findings" in open(report_from_jobs(str(out), preset="tiny")).read()
    data = np.load(os.path.join(out, "data", "runs.npz"))
    occ = data["2d-raw_s0/epoch0/feature/occupancy"]
    reg = data["2d-raw_s0/epoch0/feature/region"]
    assert occ.shape == (100,)
    # occupancy is the number of samples sharing the region
    np.testing.assert_array_equal(occ, np.bincount(reg)[reg])
    import csv

    rows = list(csv.DictReader(open(os.path.join(out, "data", "coupling.csv"))))
    assert rows and {"feature", "speed", "rho", "lo", "hi", "kind", "run", "epoch"} <= set(rows[0])
    for r in rows:
        if r["rho"] not in ("", "nan"):
            assert float(r["lo"]) - 1e-9 <= float(r["rho"]) <= float(r["hi"]) + 1e-9 or \
                r["lo"] == "nan"


def test_serial_executor_custom_preset(tmp_path):
    path = run_study(_one_experiment(), str(tmp_path), executor=SerialExecutor(),
                     progress=False)
    text = open(path).read()
    assert "2d-raw" in text and "## Findings" in text
    # an int is a number of local workers; 1 runs in this process
    path = run_study(_one_experiment(), str(tmp_path / "one"), executor=1, progress=False)
    text = open(path).read()
    assert "2d-raw" in text and "## Findings" in text


def test_validation_happens_before_training():
    # an encoding for 1D coordinates on a 2D signal
    enc_1d = _one_experiment(encoding=None)
    from regions.study.training_config import positional_encoding

    enc_1d["experiments"][0]["train"]["encoding"] = positional_encoding(2, 1)
    with pytest.raises(ValueError, match="encoding|accept"):
        build_jobs(enc_1d)
    # analysed checkpoint past the last epoch
    bad = _one_experiment()
    bad["experiments"][0]["analyse"] = [0.0, 500]
    with pytest.raises(ValueError, match="analysed checkpoint"):
        build_jobs(bad)
    # NaN targets
    from regions.study.signals import Signal

    sig = Signal("nan", np.zeros((4, 2)), np.zeros((4, 1)), (2, 2))
    sig.targets[0, 0] = np.nan
    nan = _one_experiment()
    nan["experiments"][0]["signal"] = sig
    with pytest.raises(ValueError, match="NaN"):
        build_jobs(nan)
    with pytest.raises(ValueError, match="unknown preset"):
        build_jobs("huge")
    with pytest.raises(ValueError, match="seeds"):
        build_jobs("tiny", seeds=[])
    with pytest.raises(ValueError, match="Executor"):
        run_study("tiny", "unused", executor=object())
    with pytest.raises(ValueError, match=">= 1"):
        run_study("tiny", "unused", executor=0)


def test_checkpoint_mismatch_is_caught():
    from regions.study.signals import random_image
    from regions.study.run_record import Run
    from regions.study.training_config import TrainConfig

    sig = random_image(4, channels=1)
    cfg = TrainConfig(width=4, depth=1, epochs=2)
    wrong = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    with pytest.raises(ValueError, match="does not match"):
        Run(cfg, sig, np.array([0, 2]), np.zeros((2, 16)), {2: wrong.state_dict()})


def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        path = run_study(_one_experiment(seeds=(0, 1)), str(tmp_path),
                         executor=client.get_executor(), progress=False)
    text = open(path).read()
    assert "seeds [0, 1]" in text


def test_public_names_resolve():
    import regions
    import regions.study as study

    for name in study.__all__:
        assert getattr(study, name) is not None
    assert regions.study.run_study is run_study


def test_encoded_regions_applies_to_low_l_2d_runs_only_and_keeps_other_job_keys():
    from regions.study.jobs import job_key

    exps = _one_experiment("2d-pe2", encoding=2)["experiments"] + \
        _one_experiment("2d-pe3", encoding=3)["experiments"]
    base = {"experiments": exps, "seeds": [0], "n_boot": 20, "eps": 0.5, "window": 0.25,
            "n_distant": 50}
    jobs, _, _ = build_jobs({**base, "encoded_regions": "end"})
    assert [j.get("encoded_regions") for j in jobs] == ["end", None]
    plain, _, _ = build_jobs({**base, "encoded_regions": "none"})
    assert job_key(jobs[1]) == job_key(plain[1]) and job_key(jobs[0]) != job_key(plain[0])
    with pytest.raises(ValueError, match="encoded_regions must be one of"):
        build_jobs({**base, "encoded_regions": "sometimes"})
    with pytest.raises(ValueError, match="encoded_regions_max_L must be a positive int"):
        build_jobs({**base, "encoded_regions": "end", "encoded_regions_max_L": 0})
    # above max_L the ``encoded_regions_beyond`` schedule; the low-L job keeps its key
    both, _, _ = build_jobs({**base, "encoded_regions": "end", "encoded_regions_beyond": "ends"})
    assert [j.get("encoded_regions") for j in both] == ["end", "ends"]
    assert job_key(both[0]) == job_key(jobs[0]) and job_key(both[1]) != job_key(plain[1])
    with pytest.raises(ValueError, match="encoded_regions_beyond must be one of"):
        build_jobs({**base, "encoded_regions_beyond": "often"})


def test_an_experiment_sets_its_own_whole_partition_schedule_and_only_its_key_changes():
    from regions.study.jobs import job_key

    exps = _one_experiment("2d-pe3", encoding=3)["experiments"] + \
        _one_experiment("2d-pe3-own", encoding=3)["experiments"] + \
        _one_experiment("2d-raw")["experiments"]
    base = {"experiments": exps, "seeds": [0, 1], "n_boot": 20, "eps": 0.5, "window": 0.25,
            "n_distant": 50}
    plain, _, _ = build_jobs(base)
    own = copy.deepcopy(base)
    own["experiments"][1]["encoded_regions_beyond"] = "end"
    jobs, _, _ = build_jobs(own)
    # seeds are replicated: both seeds of the experiment that asks, no other job
    assert [(j["name"], j["seed"]) for j in jobs if "encoded_regions" in j] == \
        [("2d-pe3-own", 0), ("2d-pe3-own", 1)]
    assert all(j["encoded_regions"] == "end" for j in jobs if "encoded_regions" in j)
    changed = [(a["name"], a["seed"]) for a, b in zip(jobs, plain) if job_key(a) != job_key(b)]
    assert changed == [("2d-pe3-own", 0), ("2d-pe3-own", 1)]
    # the experiment's own setting wins over the preset's, both ways
    off = copy.deepcopy(own)
    off["encoded_regions_beyond"] = "all"
    off["experiments"][1]["encoded_regions_beyond"] = "none"
    jobs, _, _ = build_jobs(off)
    assert [j.get("encoded_regions") for j in jobs] == ["all", "all", None, None, None, None]
    low = copy.deepcopy(base)
    low["experiments"][1]["encoded_regions_max_L"] = 3
    low["experiments"][1]["encoded_regions"] = "ends"
    jobs, _, _ = build_jobs(low)
    assert [j.get("encoded_regions") for j in jobs] == [None, None, "ends", "ends", None, None]
    # a bad value names the experiment; a misspelt key is refused, not ignored
    for key, value, match in (("encoded_regions_beyond", "often", "encoded_regions_beyond must be"),
                              ("encoded_regions_max_L", 0, "encoded_regions_max_L must be a pos"),
                              ("encoded_region", "end", "unknown keys \\['encoded_region'\\]")):
        bad = copy.deepcopy(base)
        bad["experiments"][1][key] = value
        with pytest.raises(ValueError, match=f"experiment '2d-pe3-own': {match}"):
            build_jobs(bad)


def test_the_paper_preset_asks_whole_l5_partitions_of_its_adam_runs_only():
    jobs, _, _ = build_jobs("paper")
    asked = {(j["name"], j["seed"]): j["encoded_regions"] for j in jobs if "encoded_regions" in j}
    assert asked == {**{("2d-pe2", s): "all" for s in (0, 1, 2)},
                     **{("2d-pe5", s): "ends" for s in (0, 1, 2)}}


def test_the_whole_encoded_partition_is_tiled_from_l_4_with_a_smaller_corner(monkeypatch):
    import regions
    import regions.encoded
    from regions.encoded import partition_tiles
    from regions.study.analysis import TILED_FROM_L, TILES, _encoded_regions
    from regions.study.features import sample_features
    from regions.study.signals import random_image

    torch.manual_seed(1)
    model = torch.nn.Sequential(regions.PositionalEncoding(TILED_FROM_L, in_features=2),
                                torch.nn.Linear(4 * TILED_FROM_L, 6), torch.nn.ReLU(),
                                torch.nn.Linear(6, 1)).double()
    sig = random_image(6, channels=1)
    net = regions.as_network(model)
    feats = sample_features(net, sig.coords, grid_shape=sig.grid_shape, encoded_faces=False)
    calls = []
    monkeypatch.setattr(regions.encoded, "partition_tiles",
                        lambda *a, **k: calls.append(k["tiles"]) or partition_tiles(*a, **k))
    fields, crop = _encoded_regions(feats, net, sig)
    assert calls == [TILES]
    lo, hi = sig.coord_range
    tiled = partition_tiles(model, ((lo, hi), (lo, hi)), tiles=TILES, workers=1, certify=False)
    assert (fields["n_regions"], fields["n_pieces"]) == (tiled.n_patterns, len(tiled))
    one = regions.partition(model, ((lo, hi), (lo, hi)))
    assert fields["n_regions"] == one.n_patterns and len(one) > 100
    side = 0.25 / 2 * (hi - lo)                 # halved once for L = 4
    assert crop.domain.xr == (lo, lo + side) and crop.domain.yr == (lo, lo + side)
    assert crop.measure.sum() == pytest.approx(side ** 2, rel=1e-9)


def test_the_whole_encoded_partition_gives_the_count_and_an_exact_density():
    # the density from the whole partition bounds from above the patterns a dense cloud of
    # torch forward passes sees in each disk (faces of one pattern may be several)
    import regions
    from regions.study.analysis import _encoded_regions
    from regions.study.features import sample_features
    from regions.study.results import Checkpoint
    from regions.study.signals import random_image

    torch.manual_seed(0)
    model = torch.nn.Sequential(regions.PositionalEncoding(2, in_features=2),
                                torch.nn.Linear(8, 10), torch.nn.ReLU(),
                                torch.nn.Linear(10, 1)).double()
    sig = random_image(6, channels=1)
    net = regions.as_network(model)
    feats = sample_features(net, sig.coords, grid_shape=sig.grid_shape, encoded_faces=False)
    assert feats.kind["density"] == "sampled"
    fields, crop = _encoded_regions(feats, net, sig)
    out = Checkpoint(epoch=0, mean_loss=0.0, n_patterns_sampled=1, hamming_patch=0.0,
                     hamming_neighbour=0.0, **fields)
    lo, hi = sig.coord_range
    whole = regions.partition(model, ((lo, hi), (lo, hi)))
    assert (out.n_regions, out.n_pieces) == (whole.n_patterns, len(whole))
    # every pattern a dense grid of forward passes sees is counted
    g = np.linspace(lo, hi, 300)
    dense = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    with torch.no_grad():
        seen = len(np.unique((model[1](model[0](torch.as_tensor(dense))) > 0).numpy(), axis=0))
    assert seen <= out.n_regions <= out.n_pieces
    # the corner kept for the report's picture: a partition of the corner box, its
    # patterns among the whole square's, its areas summing to the box's
    side = 0.25 * (hi - lo)
    assert crop.domain.xr == (lo, lo + side) and crop.domain.yr == (lo, lo + side)
    assert crop.measure.sum() == pytest.approx(side ** 2, rel=1e-9)
    whole_patterns = {p.tobytes() for p in whole.packed_patterns}
    assert all(p.tobytes() in whole_patterns for p in crop.packed_patterns)
    assert feats.kind["density"] == "exact"
    r = feats.meta["radius"]
    rng = np.random.default_rng(0)
    for i in range(0, len(sig.coords), 7):
        ang, rad = rng.uniform(0, 2 * np.pi, 4000), r * np.sqrt(rng.uniform(0, 1, 4000))
        pts = sig.coords[i] + np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
        with torch.no_grad():
            z = model[1](model[0](torch.as_tensor(pts)))
        seen = len(np.unique((z > 0).numpy(), axis=0))
        assert seen <= feats["density"][i] <= 3 * seen + 2
