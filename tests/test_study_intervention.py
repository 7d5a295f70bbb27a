"""The half-image positional-encoding intervention (issue 11 item 7):
the encoding against the paper's formula, the two arms' shared start, the
effect arithmetic against an independent computation (numpy means and a
scipy t interval), and a small study end to end (stored, reused, reported)."""
import math
import os

import numpy as np
import pytest
import torch
from scipy import stats

from regions.study import run_study
from regions.study.intervention import (HalfEncoding, effects_figure, effects_markdown,
                                        hidden_patterns, intervention_effects)
from regions.study.jobs import build_jobs, job_key
from regions.study.presets import _intervention
from regions.study.results import Intervention, RunResult
from regions.study.training_config import TrainConfig, build_model


def test_half_encoding_is_the_paper_encoding_inside_and_raw_outside():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(200, 2))
    out = HalfEncoding(3)(torch.as_tensor(p)).numpy()
    np.testing.assert_array_equal(out[:, :2], p)
    inside = p[:, 0] < 0.5
    ref = []
    for l in range(3):
        w = 2.0 ** l * np.pi
        ref += [np.sin(w * p[:, 0]), np.cos(w * p[:, 0]), np.sin(w * p[:, 1]),
                np.cos(w * p[:, 1])]
    ref = np.stack(ref, axis=1)
    np.testing.assert_allclose(out[inside, 2:], ref[inside], atol=1e-12)
    assert np.all(out[~inside, 2:] == 0)
    assert np.all(HalfEncoding(3, "nowhere")(torch.as_tensor(p)).numpy()[:, 2:] == 0)
    with pytest.raises(ValueError, match="where"):
        HalfEncoding(3, "left")


def test_arms_of_one_seed_start_from_the_same_weights_and_keys_differ():
    a = build_model(TrainConfig(encoding=HalfEncoding(5, "inside"), seed=4), 2, 3)
    b = build_model(TrainConfig(encoding=HalfEncoding(5, "nowhere"), seed=4), 2, 3)
    for k in ("1.weight", "1.bias", "3.weight", "5.weight"):
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    jobs, _, _ = build_jobs({"experiments": _intervention(8, 2, 5), "seeds": [0]})
    assert len({job_key(j) for j in jobs}) == len(jobs) == 4


def test_hidden_patterns_match_the_relu_outputs():
    m = build_model(TrainConfig(width=6, depth=2, seed=1), 2, 1)
    x = np.random.default_rng(1).uniform(0, 1, (50, 2))
    pats = hidden_patterns(m, x)
    with torch.no_grad():
        h1 = m[1](m[0](torch.as_tensor(x, dtype=torch.float32)))
        h2 = m[3](m[2](h1))
    np.testing.assert_array_equal(pats, np.concatenate([(h1 > 0).numpy(), (h2 > 0).numpy()], 1))


def _arm(name, arm, pair, seed, inside_curve, outside_curve, hamming):
    """A synthetic RunResult holding only an Intervention record."""
    epochs = np.arange(len(inside_curve))
    loss = np.stack([inside_curve, outside_curve], axis=1)
    band = np.stack([loss, loss / 2], axis=2)  # two bands, the second half the first
    iv = Intervention(arm=arm, pair=pair, optimizer="gd", L=5, inside="x < 0.5",
                      inside_share=0.5, early_epoch=1, epochs=epochs, area_loss=loss,
                      band_epochs=epochs, band_ratio=band, bands=np.array([[0, 4], [4, np.inf]]),
                      analysed_epochs=np.array([0, epochs[-1]]),
                      area_patterns=np.array([[4, 4], [4, 4]]),
                      area_hamming=np.array([[1.0, 1.0], hamming]))
    return RunResult(name=name, seed=seed, dim=2, n=4, coords=np.zeros((4, 2)),
                     record_epochs=epochs, mean_loss=loss.mean(1), intervention=iv)


def test_effects_equal_an_independent_difference_in_differences():
    rng = np.random.default_rng(2)
    results, did = [], []
    for seed in range(4):
        t_in, t_out, c_in, c_out = rng.uniform(0.1, 0.9, 4)
        results.append(_arm("int-gd-treated", "treated", "int-gd", seed,
                            [1.0, 0.8, t_in], [1.0, 0.9, t_out], [3.0, 1.5]))
        results.append(_arm("int-gd-control", "control", "int-gd", seed,
                            [1.0, 0.7, c_in], [1.0, 0.95, c_out], [1.2, 1.2]))
        did.append((math.log(1 / t_in) - math.log(1 / t_out))
                   - (math.log(1 / c_in) - math.log(1 / c_out)))
    rows = intervention_effects(results)
    row = next(r for r in rows if r["effect"] == "did" and r["when"] == "end")
    mean, se = np.mean(did), stats.sem(did)
    q = stats.t.ppf(0.975, len(did) - 1)
    assert row["n_units"] == 4 and row["epoch"] == 2 and row["optimizer"] == "gd"
    assert row["estimate"] == pytest.approx(mean, rel=1e-12)
    assert row["ci_low"] == pytest.approx(mean - q * se, rel=1e-9)
    assert row["ci_high"] == pytest.approx(mean + q * se, rel=1e-9)
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(did, 0.0).pvalue, rel=1e-9)
    # the bands of the synthetic runs are the loss curves scaled: the same effect
    for b in ("(0, 4]", "> 4"):
        band = next(r for r in rows if r["effect"] == "band_did" and r["band"] == b
                    and r["when"] == "end")
        assert band["estimate"] == pytest.approx(mean, rel=1e-9)
    early = next(r for r in rows if r["effect"] == "did" and r["when"] == "early")
    assert early["epoch"] == 1
    assert early["estimate"] == pytest.approx(
        (math.log(1 / 0.8) - math.log(1 / 0.9)) - (math.log(1 / 0.7) - math.log(1 / 0.95)))
    dens = next(r for r in rows if r["effect"] == "density" and r["when"] == "end")
    assert dens["estimate"] == pytest.approx(math.log(3.0 / 1.5) - 0.0)
    table = effects_markdown(results).splitlines()
    assert len([line for line in table if line.startswith("| int-gd |")]) == len(rows)
    assert f"| did |  | end (2) | {mean:+.3g} [{mean - q * se:+.3g}, {mean + q * se:+.3g}] | 4 |" \
        in "\n".join(table)


def test_effects_need_both_arms_of_a_seed():
    results = [_arm("int-gd-treated", "treated", "int-gd", 0, [1, .5, .2], [1, .5, .2],
                    [1.0, 1.0]),
               _arm("int-gd-control", "control", "int-gd", 1, [1, .5, .2], [1, .5, .2],
                    [1.0, 1.0])]
    assert intervention_effects(results) == []
    assert effects_figure(results, "unused.png") is None
    assert effects_markdown(results) == ""


def test_a_small_intervention_study_runs_is_stored_reused_and_reported(tmp_path):
    preset = {"name": "int-smoke", "experiments": _intervention(8, 20, 2, width=8, batch=16,
                                                                analyse=(0.0, 0.5, 1.0)),
              "seeds": [0, 1], "n_boot": 20, "n_distant": 20, "window": 0.2}
    out = tmp_path / "study"
    msgs = []
    path = run_study(preset, str(out), executor=1, progress=msgs.append)
    assert os.path.isfile(path)
    jobs = os.listdir(out / "jobs")
    assert sum(f.endswith(".json") for f in jobs) == 8
    again = []
    run_study(preset, str(out), executor=1, progress=again.append)
    assert any("reuses 8 finished job(s), trains 0" in m for m in again), again
    from regions.study.store import load_run
    stems = sorted(f[:-5] for f in jobs if f.endswith(".json"))
    loaded = [load_run(str(out / "jobs"), s)[0] for s in stems]
    assert {r.intervention.arm for r in loaded} == {"treated", "control"}
    rows = intervention_effects(loaded)
    assert {(r["pair"], r["n_units"]) for r in rows} == {("int-adam", 2), ("int-gd", 2)}
    assert effects_figure(loaded, str(tmp_path / "effects.png"))


def test_the_gd_arms_are_stable_at_initialisation_on_the_quick_shapes():
    # lr < 2 / lambda_max of the loss Hessian at init (as the other gd runs)
    from regions.study.training import sharpness

    jobs, _, _ = build_jobs("quick", seeds=[0])
    for job in (j for j in jobs if j["name"].startswith("int-gd")):
        cfg, sig = job["config"], job["signal"]
        model = build_model(cfg, 2, 3)
        assert cfg.lr < 2 / sharpness(model, sig.coords, sig.targets, iterations=30)
