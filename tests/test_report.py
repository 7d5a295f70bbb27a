"""The study report's text and figures on hand-made results: shares without
floating-point noise, '-' where nothing ran, the engine's compile reported
once and apart from the partition times, one label per run, and the figures
of the kernel split and the spectral coupling drawn from the records."""
import os
import re

import numpy as np
import pytest

from regions.study import report
from regions.study.report import write_report
from regions.study.report.format import share_text
from regions.study.results import (Checkpoint, Confusion, Correlation, KernelSplit,
                                   PairMechanism, RunResult, Spectrum)

CONFIG = {"depth": 2, "width": 16, "optimizer": "adam", "lr": 1e-3, "batch_size": 32,
          "epochs": 60, "record_every": 1}


@pytest.mark.parametrize("share, text", [(3.7e-19, "<0.1%"), (0.0, "0%"), (float("nan"), "-"),
                                         (None, "-"), (0.268, "26.8%"), (1.0, "100.0%")])
def test_shares_are_percentages_without_noise(share, text):
    assert share_text(share) == text


def _checkpoint(e, n_regions, seconds, compile_seconds, rng, n_pairs=60):
    cos = np.clip(rng.normal(0, 0.6, n_pairs), -1, 1)
    kern = rng.uniform(0.6, 1.0, n_pairs)
    conf = Confusion(neighbour=cos, distant=cos[:20], neighbour_below=3.7e-17,
                     distant_below=0.0, neighbour_mean=float(cos.mean()), distant_mean=0.0)
    return Checkpoint(
        epoch=e, mean_loss=0.1, n_regions=n_regions, n_patterns_sampled=90, hamming_patch=1.0,
        hamming_neighbour=1.0, partition_seconds=seconds, compile_seconds=compile_seconds,
        dead={"all": 0.1}, normal_cos={"l2": 0.01}, confusion=conf,
        confusion_kernel=Confusion(neighbour=kern, distant=kern[:20], neighbour_below=0.0,
                                   distant_below=0.0, neighbour_mean=float(kern.mean()),
                                   distant_mean=0.8),
        confusion_residual=Confusion(neighbour=cos, distant=cos[:20], neighbour_below=0.25,
                                     distant_below=0.1, neighbour_mean=0.0, distant_mean=0.0),
        kernel_split=KernelSplit(pearson_residual=0.98, pearson_kernel=0.01,
                                 pearson_product=0.99, anisotropy=0.1),
        pairs_kernel=PairMechanism(abs_cos_vs_hamming=Correlation(rho=-0.8, lo=-0.9, hi=-0.7,
                                                                  p=0.0, n=60)),
        spectrum=Spectrum(eigenvalues=np.array([4.0, 1.0, 0.25, 0.01]),
                          band_gain=np.array([2.0, 0.1]), frequency_order=0.9,
                          effective_rank=1.5, residual_alignment=0.4))


def _results():
    rng = np.random.default_rng(0)
    out = []
    for name, enc, counts in (("2d-raw", None, (80, 60, 70)), ("2d-pe3", "3", (None,) * 3)):
        exact = enc is None
        cps = [_checkpoint(e, counts[i], (2.0 if exact else None),
                           (150.0 if exact and i == 0 else None), rng)
               for i, e in enumerate((0, 30, 60))]
        out.append(RunResult(name=name, seed=0, dim=2, n=100, grid_shape=[10, 10],
                             coord_range=[0.0, 1.0], encoding=enc, config=dict(CONFIG),
                             coords=np.stack(np.meshgrid(np.linspace(0, 1, 10),
                                                         np.linspace(0, 1, 10)), -1)
                             .reshape(-1, 2),
                             record_epochs=np.arange(61), mean_loss=np.linspace(0.4, 0.1, 61),
                             train_seconds=1.0, checkpoints=cps))
    return out


def _table_with(text, column):
    """{run: [cells of ``column``]} of the Markdown table whose header has ``column``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|")
                 and column in [c.strip() for c in line.strip("|").split("|")])
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    k = header.index(column)
    out = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out.setdefault(cells[0], []).append(cells[k])
    return out


def test_report_prints_no_noise_and_dashes_where_nothing_ran(tmp_path):
    path = write_report(_results(), str(tmp_path), preset="hand-made")
    text = open(path).read()
    assert not re.search(r"e-\d\d%", text), "a rounding-level share printed as a percentage"
    assert "nan (" not in text and "| nan |" not in text
    # a share at rounding level (3.7e-17) is "<0.1%", not "3.70e-15" or "3.70e-17%"
    assert _table_with(text, "neighbour pairs cos < -0.5")["2d-raw"] == ["<0.1%"]
    table = _table_with(text, "partition s")
    assert table["2d-pe3"] == ["-"] * 3        # encoded 2D: no exact partition ran
    assert table["2d-raw"] == ["2.00"] * 3     # the enumeration alone, without the compile
    # the compile is reported once, apart from the partition times
    assert text.count("150.0 s") == 1 and "once per engine and worker process" in text
    for section in ("## Where the old numbers were an artefact", "## Kernel against residual",
                    "## Spectral coupling: the kernel's spectrum"):
        assert section in text
    assert "figure kernel_split failed" not in text
    assert "figure spectral_coupling failed" not in text
    assert os.path.getsize(tmp_path / "figures" / "kernel_split.png") > 10_000
    assert os.path.getsize(tmp_path / "figures" / "spectral_coupling.png") > 10_000


def test_every_finding_names_its_rule_in_the_report(tmp_path):
    path = write_report(_results(), str(tmp_path), preset="hand-made")
    text = open(path).read()
    n = int(re.search(r"(\d+) findings:", text).group(1))
    assert len(re.findall(r"\*\*(Holds|Does not hold|Inconclusive|Not tested)\*\* by rule \d",
                          text)) == n


def test_a_section_has_its_heading_then_its_text_then_the_figures_that_were_drawn():
    from regions.study.report.format import section

    @section("Title", ("drawn", "a drawn figure"), ("failed", "a failed one"),
             ("gif", "an animation", "Caption:\n"))
    def body(L, results, g, figs, found):
        L.append("text")

    @section("Nothing", ("drawn", "a drawn figure"))
    def empty(L, results, g, figs, found):
        L.append("never shown")
        return False

    L = ["before"]
    figs = {"drawn": "/any/folder/drawn.png", "failed": None, "gif": "out/figures/gif.gif"}
    body(L, [], {}, figs, [])
    empty(L, [], {}, figs, [])
    assert L == ["before", "## Title\n", "text", "![a drawn figure](figures/drawn.png)\n",
                 "Caption:\n", "![an animation](figures/gif.gif)\n"]


def test_lookup_follows_attributes_and_keys_and_stops_at_none():
    from regions.study.results import lookup

    c = Checkpoint(epoch=0, mean_loss=0.1, n_regions=None, n_patterns_sampled=1,
                   hamming_patch=0.0, hamming_neighbour=0.0, dead={"all": 0.25},
                   normal_cos={}, kernel_split=None)
    assert lookup(c, "dead", "all") == 0.25
    assert lookup(c, "kernel_split", "pearson_residual") is None
    assert lookup(c, "epoch") == 0 and lookup(c) is c


def test_region_sizes_draws_the_exact_sample_faces_of_an_encoded_2d_run(tmp_path):
    # hand-made results have no saved partitions: the figure's only row is the encoded
    # 2D run's exact faces; with sampled features it has nothing to draw and says so
    from regions.study import figures
    from regions.study.figures.partitions import _end_faces

    results = _results()
    pe = results[1]
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 70, 100)
    pe.checkpoints[-1].features = {"measure": rng.uniform(1e-7, 1e-3, 70)[ids], "region": ids}
    with pytest.raises(ValueError, match="no run with an exact partition"):
        figures.region_sizes(results, str(tmp_path / "none.png"))
    pe.checkpoints[-1].kinds = {"measure": "exact", "region": "exact"}
    r, c = _end_faces(results)
    assert r is pe and c is pe.checkpoints[-1]
    path = figures.region_sizes(results, str(tmp_path / "sizes.png"))
    assert os.path.getsize(path) > 10_000


def test_a_feature_measured_two_ways_over_training_says_where():
    # the encoded 2D faces cut at the first and last checkpoints only: the tables'
    # label must not call the checkpoints between exact
    from regions.study.report.sections import kind_label

    cps = _results()[1].checkpoints
    for c, kind in zip(cps, ("exact", "sampled", "exact")):
        c.features = {"measure": np.ones(100)}
        c.kinds = {"measure": kind}
    assert kind_label(cps, "measure") == "exact at epochs 0, 60; sampled at epoch 30"
    assert kind_label(cps[:1], "measure") == "exact"
    assert kind_label(cps, "inradius") == ""
