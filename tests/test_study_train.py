"""Signals, training with a per-sample record, and convergence measures.

Checks state properties that do not restate the code: the sinusoid's DFT has
peaks exactly at its frequencies, two runs with one seed are identical, the
recorded epoch-0 losses are the untrained model's losses, a saved run loads
back to the same predictions, and the residual energy is 0 for a zero
residual and 1 per band for the centred target.
"""
import numpy as np
import pytest
import torch

from regions.study.bands import (band_energy_from_run, band_residual_ratio, bands_around,
                                 default_bands)
from regions.study.convergence import epochs_to_fraction, log_loss_slope, normalized_auc
from regions.study.signals import (Signal, from_array, image_file, random_image,
                                   sum_of_sinusoids)
from regions.study.run_record import Run, sample_losses
from regions.study.training import train
from regions.study.training_config import TrainConfig, build_model

SMALL = dict(width=16, depth=2, epochs=6, lr=1e-2, batch_size=16)


# --------------------------------------------------------------------------- signals
def test_sum_of_sinusoids_spectrum_and_grid():
    s = sum_of_sinusoids()
    assert s.coords.shape == (2048, 1) and s.targets.shape == (2048, 1)
    assert s.grid_shape == (2048,) and s.coords[1, 0] == 1 / 2048 and s.coords[-1, 0] < 1
    amp = np.abs(np.fft.rfft(s.targets[:, 0])) / 1024
    peaks = set(np.flatnonzero(amp > 0.5).tolist())
    assert peaks == set(range(5, 75, 5))
    assert np.allclose(amp[sorted(peaks)], 1.0)
    s2 = sum_of_sinusoids(coord_range=(-1, 1))
    assert np.array_equal(s2.targets, s.targets) and s2.coords[0, 0] == -1.0


def test_random_image_and_grid_convention():
    s = random_image(size=(4, 6), channels=3, seed=1)
    assert s.grid_shape == (4, 6) and s.coords.shape == (24, 2) and s.targets.shape == (24, 3)
    assert s.targets.min() >= 0 and s.targets.max() <= 254 / 255
    assert np.array_equal(s.targets, random_image((4, 6), 3, seed=1).targets)
    # row-major: index = row * W + col, coords[:, 0] = col / W, coords[:, 1] = row / H
    k = 2 * 6 + 5
    assert s.coords[k].tolist() == [5 / 6, 2 / 4]
    assert np.array_equal(s.as_grid()[2, 5], s.targets[k])


def test_from_array_and_image_file(tmp_path):
    img = np.random.default_rng(0).uniform(size=(5, 7, 3))
    s = from_array(img)
    assert s.grid_shape == (5, 7) and np.array_equal(s.as_grid(), img)
    assert from_array(np.arange(9.0)).grid_shape == (9,)
    assert from_array(np.zeros((9, 2)), dim=1).targets.shape == (9, 2)
    assert from_array(np.zeros((9, 2)), dim=2).grid_shape == (9, 2)
    import matplotlib.image
    path = tmp_path / "img.png"
    matplotlib.image.imsave(path, img)
    f = image_file(path)
    assert f.grid_shape == (5, 7) and f.channels == 3
    assert np.abs(f.targets - s.targets).max() < 1 / 255 + 1e-9
    assert image_file(path, size=4).grid_shape == (4, 4)


@pytest.mark.parametrize("bad,match", [
    (np.zeros(0), "empty"),
    (np.array([1.0, np.nan, 2.0]), "NaN"),
    (np.array([[1.0, np.inf, 0.0]]).T, "NaN or inf"),
    (np.zeros((3, 4)), "ambiguous"),
    (np.zeros((2, 2, 2, 2)), "targets must be"),
])
def test_from_array_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        from_array(bad)


def test_signal_validation():
    with pytest.raises(ValueError, match="coords must have shape"):
        Signal("x", np.zeros((4, 1)), np.zeros((4, 1)), (2, 2))
    with pytest.raises(ValueError, match="coord_range"):
        random_image(4, coord_range=(1, 0))
    with pytest.raises(ValueError, match="does not exist"):
        image_file("/nonexistent/file.png")


# --------------------------------------------------------------------------- training
def test_package_exports_the_training_function_not_a_module():
    # the module is regions.study.training, so importing it (as this file does)
    # leaves the package's name train to the function
    import regions.study
    from regions.study import train as t

    assert t is train and callable(t) and regions.study.train is train
    assert t.__module__ == "regions.study.training"


def test_build_model_is_deterministic_and_shaped():
    a = build_model(TrainConfig(width=8, depth=3, seed=4), 2, 3)
    b = build_model(TrainConfig(width=8, depth=3, seed=4), 2, 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert [type(m).__name__ for m in a].count("Linear") == 4
    pe = build_model(TrainConfig(width=8, encoding=3), 2, 1)
    assert pe[1].in_features == 12  # 2 coords x 3 frequencies x (sin, cos)
    x = torch.tensor([[0.25, 0.5]])
    feats = pe[0](x)[0].numpy()
    want = [f(2 ** l * np.pi * p) for l in range(3) for p in (0.25, 0.5) for f in (np.sin, np.cos)]
    assert np.allclose(feats, want, atol=1e-6)


def test_training_is_deterministic_and_records():
    sig = random_image(8, channels=2, seed=3)
    cfg = TrainConfig(record_every=4, checkpoints=(2, 3), shuffle="every", **SMALL)
    r1, r2 = train(sig, cfg, progress=False), train(sig, cfg, progress=False)
    assert np.array_equal(r1.losses, r2.losses)
    assert r1.record_epochs.tolist() == [0, 4, 6] and r1.losses.shape == (3, 64)
    assert r1.checkpoint_epochs == [0, 2, 3, 6]
    assert np.allclose(r1.losses[0], sample_losses(build_model(cfg, 2, 2), sig.coords,
                                                   sig.targets))
    assert np.allclose(r1.losses[-1], sample_losses(r1.model, sig.coords, sig.targets))
    assert np.allclose(r1.losses_at(6), ((r1.predictions_at(6) - sig.targets) ** 2).mean(1),
                       rtol=1e-5)
    assert r1.mean_loss[-1] < r1.mean_loss[0]
    r3 = train(sig, TrainConfig(record_every=4, checkpoints=(2, 3), shuffle="every",
                                **{**SMALL, "seed": 1}), progress=False)
    assert not np.array_equal(r1.losses, r3.losses)
    with pytest.raises(ValueError, match=r"available epochs: \[0, 2, 3, 6\]"):
        r1.model_at(5)


@pytest.mark.parametrize("opt,shuffle,enc", [("gd", "none", None), ("sgd", "once", 2),
                                             ("adam", "once", torch.nn.Identity())])
def test_training_variants(opt, shuffle, enc):
    sig = sum_of_sinusoids(n=64, ks=(2, 3))
    cfg = TrainConfig(optimizer=opt, shuffle=shuffle, encoding=enc, record_predictions=True,
                      **SMALL)
    run = train(sig, cfg, progress=False)
    assert run.losses.shape == (7, 64) and np.all(np.isfinite(run.losses))
    assert run.predictions.shape == (7, 64, 1)
    assert np.allclose(((run.predictions[-1] - sig.targets) ** 2).mean(1), run.losses[-1],
                       rtol=1e-5)


def test_full_batch_gd_follows_the_gradient():
    # one epoch of full-batch GD = one step: mean loss must drop for a small lr
    sig = sum_of_sinusoids(n=32, ks=(1,))
    run = train(sig, TrainConfig(width=16, optimizer="gd", lr=1e-3, epochs=1), progress=False)
    assert run.mean_loss[1] < run.mean_loss[0]


def test_save_load_roundtrip(tmp_path):
    sig = random_image(6, channels=1, seed=2)
    run = train(sig, TrainConfig(encoding=2, checkpoints=(3,), **SMALL), progress=False)
    path = tmp_path / "run.pt"
    run.save(path)
    back = Run.load(path)
    assert np.array_equal(back.losses, run.losses)
    assert back.checkpoint_epochs == run.checkpoint_epochs
    assert back.config.encoding == 2 and back.signal.grid_shape == (6, 6)
    for e in run.checkpoint_epochs:
        assert np.array_equal(back.predictions_at(e), run.predictions_at(e))


def test_bad_config_and_checkpoints_raise():
    sig = random_image(4, channels=1)
    for kwargs, match in [(dict(optimizer="lbfgs"), "optimizer"), (dict(width=0), "width"),
                          (dict(shuffle="always"), "shuffle"), (dict(lr=-1.0), "lr"),
                          (dict(epochs=3, checkpoints=(5,)), "checkpoints"),
                          (dict(encoding="pe"), "encoding")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="encoding mismatch"):
        train(sig, TrainConfig(encoding=torch.nn.Linear(3, 4), epochs=1), progress=False)
    with pytest.raises(ValueError, match="Signal"):
        train(np.zeros((4, 4)), TrainConfig(epochs=1))
    run = train(sig, TrainConfig(width=4, epochs=1), progress=False)
    wrong = build_model(TrainConfig(width=5), 2, 1).state_dict()
    with pytest.raises(ValueError, match="does not match the model"):
        Run(config=run.config, signal=sig, record_epochs=run.record_epochs, losses=run.losses,
            checkpoints={1: wrong})
    with pytest.raises(ValueError, match=r"losses must have shape"):
        Run(config=run.config, signal=sig, record_epochs=run.record_epochs,
            losses=run.losses[:, :3], checkpoints=run.checkpoints)


# --------------------------------------------------------------------------- convergence
def test_speed_measures():
    epochs = np.array([0, 10, 20, 30])
    L = np.array([[1.0, 2.0, 1.0, 3.0],
                  [0.5, 0.1, 1.0, 3.0],
                  [0.2, 0.1, 1.0, 0.0],
                  [0.05, 0.1, 1.0, 0.0]])
    t, cens = epochs_to_fraction(L, epochs, eps=0.1)
    assert t.tolist() == [30.0, 10.0, np.inf, 20.0]
    assert cens.tolist() == [False, False, True, False]
    auc = normalized_auc(L, epochs)
    assert auc[2] == pytest.approx(1.0)
    assert auc[1] < auc[0] < 1
    decay = np.exp(-0.1 * epochs)[:, None] * np.array([[1.0, 5.0]])
    assert np.allclose(log_loss_slope(decay, epochs), -0.1)
    assert np.allclose(log_loss_slope(decay, epochs, window=(10, 30)), -0.1)
    with pytest.raises(ValueError, match="at least two"):
        log_loss_slope(decay, epochs, window=(11, 19))
    with pytest.raises(ValueError, match="one entry per record"):
        epochs_to_fraction(L, epochs[:3])
    with pytest.raises(ValueError, match="increasing"):
        normalized_auc(L, [0, 10, 10, 30])
    with pytest.raises(ValueError, match="eps"):
        epochs_to_fraction(L, epochs, eps=0)


@pytest.mark.parametrize("sig", [sum_of_sinusoids(n=256, ks=(5, 20, 60)),
                                 random_image(16, channels=3, seed=1)], ids=["1d", "2d"])
def test_residual_energy_extremes(sig):
    bands = default_bands(sig.grid_shape)
    Y = sig.targets
    E = band_residual_ratio(np.zeros((2,) + Y.shape), sig.grid_shape, bands, targets=Y)
    assert E.shape == (2, len(bands))
    ok = np.isfinite(E[0])
    assert ok.any() and np.all(E[:, ok] == 0)
    E1 = band_residual_ratio(Y - Y.mean(0), sig.grid_shape, bands, targets=Y)
    assert np.allclose(E1[ok], 1.0)
    # a constant offset is DC only: no band sees it
    E2 = band_residual_ratio(-(Y - Y.mean(0)) + 3.0, sig.grid_shape, bands, targets=Y)
    assert np.allclose(E2[ok], 1.0)


def test_residual_energy_separates_frequencies():
    sig = sum_of_sinusoids(n=256, ks=(5, 60))
    t = np.arange(256) / 256
    low = np.sin(2 * np.pi * 5 * t)[:, None]
    E = band_residual_ratio(low, (256,), bands_around([5, 60]), targets=sig.targets)
    assert E[0] == pytest.approx(1.0) and E[1] == pytest.approx(0.0, abs=1e-20)
    assert np.isnan(band_residual_ratio(low, (256,), [[100, 120]], targets=sig.targets)[0])
    with pytest.raises(ValueError, match="targets"):
        band_residual_ratio(low, (256,), None)
    with pytest.raises(ValueError, match="bands"):
        band_residual_ratio(low, (256,), [[3, 1]], targets=sig.targets)
    with pytest.raises(ValueError, match="residuals"):
        band_residual_ratio(low[:10], (256,), None, targets=sig.targets)


def test_band_energy_from_run():
    sig = random_image(8, channels=1)
    run = train(sig, TrainConfig(checkpoints=(2,), **SMALL), progress=False)
    epochs, E, bands = band_energy_from_run(run)
    assert epochs.tolist() == [0, 2, 6] and E.shape == (3, len(bands))
    run2 = train(sig, TrainConfig(record_predictions=True, **SMALL), progress=False)
    epochs2, E2, _ = band_energy_from_run(run2)
    assert epochs2.tolist() == list(range(7))
    assert np.allclose(E2[[0, 6]], E[[0, 2]], rtol=1e-5)


def test_run_pickles_and_threads_are_restored():
    import pickle
    before = torch.get_num_threads()
    run = train(random_image(4, channels=1), TrainConfig(encoding=2, **SMALL), progress=False,
                threads=1)
    assert torch.get_num_threads() == before
    back = pickle.loads(pickle.dumps(run))  # runs travel through process executors
    assert np.array_equal(back.predictions_at(6), run.predictions_at(6))
    with pytest.raises(ValueError, match="threads"):
        train(random_image(4, channels=1), TrainConfig(**SMALL), threads=0)


def test_save_load_with_an_encoding_module(tmp_path):
    from regions.encoding import RandomFourierFeatures
    sig = random_image(6, channels=1, seed=2)
    run = train(sig, TrainConfig(encoding=RandomFourierFeatures(2, 4, 2.0, seed=1), **SMALL),
                progress=False)
    run.save(tmp_path / "rff.pt")
    back = Run.load(tmp_path / "rff.pt")
    assert np.array_equal(back.predictions_at(6), run.predictions_at(6))


def test_endpoint_grid_and_roundtrip(tmp_path):
    s = random_image(5, channels=1, endpoint=True)
    assert s.coords[:, 0].max() == 1.0 and np.allclose(np.unique(s.coords[:, 1]),
                                                        np.linspace(0, 1, 5))
    assert sum_of_sinusoids(n=8, endpoint=True, coord_range=(-1, 1)).coords[-1, 0] == 1.0
    run = train(s, TrainConfig(**SMALL), progress=False)
    run.save(tmp_path / "e.pt")
    assert Run.load(tmp_path / "e.pt").signal.endpoint
