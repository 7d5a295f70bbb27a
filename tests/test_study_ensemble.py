"""Batched ensemble training against one-by-one training, and full-batch GD.

The reference is :func:`regions.study.training.train` run on each member
alone (``torch.nn.Linear`` layers, ``torch.optim.Adam`` / ``SGD`` per model).
The tolerance is 1e-6 of the largest recorded loss (float32 rounding of a
short run would stay below it even if the sums were ordered differently);
on this machine the two are bitwise equal, which the pinned tiny-preset
tables also show: trained in ensembles, the tiny preset writes the reference
tables of tests/test_study_tables.py.
"""
import copy
import os
import warnings

import numpy as np
import pytest
import torch

from regions.encoding import PositionalEncoding
from test_study_tables import REFERENCE, TABLES, _is_timing, _rows, _same_cell

from regions.study import run_study
from regions.study.ensemble import ensemble_key, ensemble_size, train_ensemble
from regions.study.jobs import build_jobs, ensemble_groups
from regions.study.presets import PRESETS
from regions.study.signals import random_image, sum_of_sinusoids
from regions.study.training import batch_order, sharpness, train
from regions.study.training_config import DEFAULT_LR, TrainConfig, build_model

REL = 1e-6


def _assert_same_runs(batched, single):
    assert len(batched) == len(single)
    for b, s in zip(batched, single):
        scale = float(np.nanmax(s.losses))
        np.testing.assert_array_equal(np.isnan(b.losses), np.isnan(s.losses))
        np.testing.assert_allclose(b.losses, s.losses, rtol=0, atol=REL * scale, equal_nan=True)
        assert b.checkpoint_epochs == s.checkpoint_epochs
        for e in s.checkpoints:
            for k, v in s.checkpoints[e].items():
                v = v.numpy()
                finite = np.abs(v[np.isfinite(v)])
                scale = float(finite.max()) if finite.size else 0.0
                np.testing.assert_allclose(b.checkpoints[e][k].numpy(), v, rtol=0,
                                           atol=1e-5 * scale + 1e-30, equal_nan=True)
        if s.predictions is not None:
            np.testing.assert_allclose(b.predictions, s.predictions, rtol=0,
                                       atol=REL * float(np.nanmax(np.abs(s.predictions))),
                                       equal_nan=True)


def _configs(optimizer, shuffle, batch, lr=None, epochs=25):
    # different seeds (so different minibatch orders) and encodings (input widths
    # 2, 12, 2, 8: first-layer groups of two and of one); N = 100 is not a
    # multiple of the batch, so the last batch is smaller
    return [TrainConfig(width=16, depth=2, encoding=enc, seed=seed, optimizer=optimizer, lr=lr,
                        batch_size=batch, shuffle=shuffle, epochs=epochs, checkpoints=(7,),
                        record_every=3, record_predictions=bool(seed % 2))
            for enc, seed in [(None, 0), (3, 1), (None, 2), (2, 3)]]


@pytest.mark.parametrize("optimizer, shuffle, batch, lr", [
    ("adam", "once", 32, 1e-2),
    ("adam", "every", 32, 1e-2),
    ("adam", "none", None, 1e-2),
    ("gd", "none", None, None),
    ("sgd", "every", 30, 0.05),
])
def test_batched_training_equals_one_by_one(optimizer, shuffle, batch, lr):
    sig = random_image(10, channels=3, seed=0)
    cfgs = _configs(optimizer, shuffle, batch, lr)
    single = [train(sig, c, progress=False) for c in cfgs]
    _assert_same_runs(train_ensemble([sig] * len(cfgs), cfgs, progress=False), single)


def test_batched_training_equals_one_by_one_at_the_study_shapes():
    # 2x128 on 32x32x3 with batch 256 (the quick preset's 2D shape) and 1D 4x128 full batch
    img = random_image(32, channels=3, seed=1)
    cfgs = [TrainConfig(width=128, depth=2, encoding=enc, seed=s, batch_size=256, epochs=3)
            for enc, s in [(None, 0), (2, 1), (5, 2)]]
    _assert_same_runs(train_ensemble([img] * 3, cfgs, progress=False),
                      [train(img, c, progress=False) for c in cfgs])
    sines = sum_of_sinusoids(n=512, seed=0)
    cfgs = [TrainConfig(width=128, depth=4, encoding=enc, seed=s, batch_size=None,
                        shuffle="none", epochs=3) for enc, s in [(None, 0), (None, 1), (5, 0)]]
    _assert_same_runs(train_ensemble([sines] * 3, cfgs, progress=False),
                      [train(sines, c, progress=False) for c in cfgs])


def test_members_differ_in_targets_and_minibatch_order():
    # one shape, different targets and seeds: each member is its own run (and the
    # orders of two seeds do differ, so the test could tell them apart)
    sigs = [random_image(8, channels=1, seed=k) for k in range(3)]
    cfgs = [TrainConfig(width=8, depth=1, seed=s, batch_size=16, shuffle="every", epochs=5,
                        lr=1e-2) for s in (0, 1, 2)]
    first = [next(batch_order(64, c))[0] for c in cfgs]
    assert not torch.equal(first[0], first[1])
    _assert_same_runs(train_ensemble(sigs, cfgs, progress=False),
                      [train(s, c, progress=False) for s, c in zip(sigs, cfgs)])


def test_a_diverging_member_stops_alone():
    # at lr 2.5 the PE L=2 net of seed 0 diverges, the raw one of seed 1 does not
    sig = sum_of_sinusoids(n=64, seed=0)
    cfgs = [TrainConfig(width=8, depth=2, seed=s, encoding=enc, optimizer="gd", lr=2.5,
                        epochs=30, record_every=1) for enc, s in [(2, 0), (None, 1)]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        single = [train(sig, c, progress=False) for c in cfgs]
    assert [bool(np.isnan(r.losses).any()) for r in single] == [True, False]
    with warnings.catch_warnings(record=True) as caught_batched:
        warnings.simplefilter("always")
        batched = train_ensemble([sig, sig], cfgs, progress=False)
    assert [str(w.message) for w in caught_batched] == [str(w.message) for w in caught]
    _assert_same_runs(batched, single)
    for b, s in zip(batched, single):
        for vb, vs in zip(b.model.state_dict().values(), s.model.state_dict().values()):
            np.testing.assert_array_equal(vb.numpy(), vs.numpy())


def test_what_can_train_together():
    sig = random_image(6, channels=3)
    base = TrainConfig(width=8, depth=2, epochs=4)
    key = ensemble_key(sig, base)
    assert ensemble_key(sig, TrainConfig(width=8, depth=2, epochs=4, seed=5, encoding=3)) == key
    for other in (dict(width=9), dict(depth=3), dict(lr=2e-3), dict(batch_size=8),
                  dict(epochs=5), dict(optimizer="gd"), dict(record_every=2)):
        assert ensemble_key(sig, TrainConfig(**{**dict(width=8, depth=2, epochs=4), **other})) \
            != key, other
    trainable = torch.nn.Sequential(torch.nn.Linear(2, 4))
    assert ensemble_key(sig, TrainConfig(width=8, encoding=trainable)) is None
    with pytest.raises(ValueError, match="cannot train in this ensemble"):
        train_ensemble([sig, sig], [base, TrainConfig(width=8, depth=3, epochs=4)])
    with pytest.raises(ValueError, match="one config per signal"):
        train_ensemble([sig], [])
    # a fixed (untrained) encoding module is batched like the int form
    fixed = PositionalEncoding(2, in_features=2)
    assert ensemble_key(sig, TrainConfig(width=8, depth=2, epochs=4, encoding=fixed)) == key


def test_study_groups_keep_every_job_once_and_respect_the_size():
    jobs, _, _ = build_jobs("paper")
    for job in jobs:
        job["ensemble"] = True
    groups = ensemble_groups(jobs)
    assert sorted(i for g in groups for i in g) == list(range(len(jobs)))
    for g in groups:
        keys = {ensemble_key(jobs[i]["signal"], jobs[i]["config"]) for i in g}
        assert len(keys) == 1
        assert len(g) <= ensemble_size(jobs[g[0]]["signal"], jobs[g[0]]["config"])
    assert max(len(g) for g in groups) > 1
    for job in jobs:
        job["ensemble"] = False
    assert all(len(g) == 1 for g in ensemble_groups(jobs))


def test_the_tiny_preset_trained_in_ensembles_writes_the_reference_tables(tmp_path):
    # a dict preset takes missing keys from quick: encoded_crossings and encoded_faces
    # as tiny has them (quick sets both; tiny leaves them at their default, "all")
    tiny = {**copy.deepcopy(PRESETS["tiny"]), "ensemble": True, "name": "tiny",
            "encoded_crossings": "all", "encoded_faces": "all"}
    jobs, _, _ = build_jobs(tiny)
    assert sorted(len(g) for g in ensemble_groups(jobs)) == [2, 2]
    run_study(tiny, str(tmp_path), executor=1, progress=False)
    for table in TABLES:
        cols, ref = _rows(os.path.join(REFERENCE, table))
        _, new = _rows(os.path.join(tmp_path, "data", table))
        assert len(new) == len(ref)
        diffs = [(i, c, r[c], n[c]) for i, (r, n) in enumerate(zip(ref, new)) for c in cols
                 if not _is_timing(c) and not _same_cell(r[c], n[c])]
        assert not diffs, f"{table}: {len(diffs)} cells differ, first: {diffs[:5]}"


# ----------------------------------------------------------------------------- gd
def test_gd_is_full_batch_gradient_descent():
    # one epoch of gd is one step theta - lr * grad of the full-batch loss
    sig = random_image(6, channels=2, seed=3)
    cfg = TrainConfig(width=8, depth=2, optimizer="gd", batch_size=4, epochs=1)
    assert cfg.lr == DEFAULT_LR["gd"]
    model = build_model(cfg, 2, 2)
    X = torch.as_tensor(sig.coords, dtype=torch.float32)
    Y = torch.as_tensor(sig.targets, dtype=torch.float32)
    loss = ((model(X) - Y) ** 2).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    run = train(sig, cfg, progress=False)
    for (name, p), g in zip(model.named_parameters(), grads):
        np.testing.assert_allclose(run.checkpoints[1][name].numpy(),
                                   (p - cfg.lr * g).detach().numpy(), rtol=0, atol=1e-7)


def test_the_default_learning_rates():
    assert TrainConfig().lr == 1e-3
    assert TrainConfig(optimizer="gd").lr == 0.1
    assert TrainConfig(optimizer="gd", lr=0.5).lr == 0.5
    assert TrainConfig.from_dict(TrainConfig(optimizer="gd").to_dict()).lr == 0.1
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=True)


def test_sharpness_is_the_top_hessian_eigenvalue():
    # against the dense Hessian of a tiny net's loss
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    y = np.random.default_rng(1).normal(size=(20, 2))
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params]).double()
    X, Y = torch.as_tensor(x), torch.as_tensor(y)

    def loss(theta):
        out, k = X, 0
        pieces = []
        for s in shapes:
            n = int(np.prod(s))
            pieces.append(theta[k:k + n].reshape(s))
            k += n
        h = torch.relu(out @ pieces[0].T + pieces[1])
        return ((h @ pieces[2].T + pieces[3] - Y) ** 2).mean()

    H = torch.autograd.functional.hessian(loss, flat)
    top = float(torch.linalg.eigvalsh(H)[-1])
    assert sharpness(model, x, y, iterations=300) == pytest.approx(top, rel=1e-3)


def test_the_default_gd_rate_is_stable_at_initialisation_on_the_quick_shapes():
    # lr < 2 / lambda_max of the loss Hessian at init: GD is locally stable there
    img = random_image(32, channels=3, seed=0)
    for enc in (None, 5):
        cfg = TrainConfig(width=128, depth=2, encoding=enc, optimizer="gd")
        model = build_model(cfg, 2, 3)
        assert cfg.lr < 2 / sharpness(model, img.coords, img.targets, iterations=30)
