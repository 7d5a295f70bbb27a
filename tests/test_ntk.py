"""The NTK machinery (regions.study.ntk) against independent references.

* Per-sample Jacobians and loss gradients taken by plain ``torch.autograd``,
  one sample and one output channel at a time: the NTK blocks ``K_ij``, the
  trace NTK and ``G_ij = (4/C^2) r_i^T K_ij r_j`` to rounding.
* A linear model (fixed positional features, then one Linear layer), whose
  NTK does not change in training: the spectral GD prediction against real
  full-batch GD steps taken by torch, exact to rounding, for one and for
  three channels.
* One real Adam step taken by ``torch.optim.Adam``: the first-order
  prediction ``g_i . dtheta`` against the measured change (Pearson > 0.9999),
  and its split by pair class against explicit sums over autograd per-sample
  gradients and the optimiser's state.
"""
import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from regions.encoding import PositionalEncoding
from regions.study import ntk
from regions.study.grid import adjacent_pairs, grid_coordinates, patch_pairs
from regions.study.training import TrainConfig, build_model


def _jacobians(model, x):
    """``(N, C, P)`` output Jacobians by torch.autograd, sample by sample."""
    m = copy.deepcopy(model).double()
    params = [p for p in m.parameters() if p.requires_grad]
    X = torch.as_tensor(np.asarray(x, dtype=np.float64))
    out = []
    for i in range(X.shape[0]):
        f = m(X[i:i + 1])[0]
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(f[c], params,
                                                                         retain_graph=True)])
                for c in range(f.shape[0])]
        out.append(torch.stack(rows))
    return torch.stack(out).numpy()


def _loss_gradients(model, x, y):
    """``(N, P)`` gradients of ``loss_i = mean_c (f_ic - y_ic)^2`` by torch.autograd."""
    m = copy.deepcopy(model).double()
    params = [p for p in m.parameters() if p.requires_grad]
    X, Y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    return np.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        ((m(X[i:i + 1])[0] - Y[i]) ** 2).mean(), params)]).numpy() for i in range(X.shape[0])])


def _outputs(model, x):
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.as_tensor(x, dtype=torch.float64)).numpy()


def _setup(encoding, dim, channels, n=40, seed=0, leaky=False):
    model = build_model(TrainConfig(width=10, depth=2, encoding=encoding, seed=seed), dim,
                        channels)
    if leaky:
        model = torch.nn.Sequential(*[torch.nn.LeakyReLU(0.2) if isinstance(m, torch.nn.ReLU)
                                      else m for m in model])
    rng = np.random.default_rng(seed)
    return model, rng.uniform(0, 1, (n, dim)), rng.normal(size=(n, channels))


@pytest.mark.parametrize("encoding,dim,channels,leaky",
                         [(None, 1, 1, False), (None, 2, 3, False), (2, 2, 3, False),
                          (3, 1, 2, True)])
def test_kernel_blocks_and_split_match_autograd(encoding, dim, channels, leaky):
    model, x, y = _setup(encoding, dim, channels, leaky=leaky)
    J = _jacobians(model, x)
    jf = ntk.jacobian_factors(model, x)
    assert np.allclose(jf.outputs, _outputs(model, x), rtol=1e-12, atol=1e-14)
    pairs = np.array([[0, 1], [3, 3], [5, 39], [39, 5], [12, 20]])
    ref = np.einsum("pcq,pdq->pcd", J[pairs[:, 0]], J[pairs[:, 1]])
    K = ntk.kernel_blocks(jf, pairs)
    scale = np.abs(ref).max()
    assert K.shape == (5, channels, channels)
    assert np.abs(K - ref).max() <= 1e-12 * scale
    theta_ref = np.einsum("icq,jcq->ij", J, J)
    assert np.abs(ntk.trace_ntk(jf) - theta_ref).max() <= 1e-12 * np.abs(theta_ref).max()
    rows = np.array([7, 2, 30])
    assert np.allclose(ntk.trace_ntk(jf, rows), theta_ref[np.ix_(rows, rows)], rtol=1e-12)
    assert np.allclose(ntk.kernel_traces(jf), np.diag(theta_ref), rtol=1e-12)

    split = ntk.kernel_split(jf, y, pairs)
    g = _loss_gradients(model, x, y)
    G_ref = np.einsum("pq,pq->p", g[pairs[:, 0]], g[pairs[:, 1]])
    assert np.abs(split["gram"] - G_ref).max() <= 1e-12 * np.abs(G_ref).max()
    d = np.diag(theta_ref)
    s_ref = np.trace(ref, axis1=1, axis2=2) / np.sqrt(d[pairs[:, 0]] * d[pairs[:, 1]])
    assert np.allclose(split["kernel"], s_ref, rtol=1e-12)
    assert split["kernel"][1] == pytest.approx(1.0)
    r = _outputs(model, x) - y
    ri, rj = r[pairs[:, 0]], r[pairs[:, 1]]
    rc_ref = (ri * rj).sum(1) / np.linalg.norm(ri, axis=1) / np.linalg.norm(rj, axis=1)
    assert np.allclose(split["residual"], rc_ref, rtol=1e-12)
    assert np.allclose(split["product"], s_ref * rc_ref, rtol=1e-12)
    if channels == 1:
        # one channel: the gradient cosine is exactly kernel similarity times the residual sign
        norms = np.linalg.norm(g, axis=1)
        cos = G_ref / norms[pairs[:, 0]] / norms[pairs[:, 1]]
        assert np.allclose(split["product"], cos, rtol=1e-10)
        assert np.all(split["anisotropy"] == 0)
    else:
        iso = ref - (np.trace(ref, axis1=1, axis2=2) / channels)[:, None, None] * np.eye(channels)
        assert np.allclose(split["anisotropy"], np.linalg.norm(iso, axis=(1, 2))
                           / np.linalg.norm(ref, axis=(1, 2)), rtol=1e-10)


def test_kernel_split_rejects_bad_input():
    model, x, y = _setup(None, 2, 3)
    jf = ntk.jacobian_factors(model, x)
    with pytest.raises(ValueError, match="outputs' shape"):
        ntk.kernel_split(jf, y[:, :2], [[0, 1]])
    with pytest.raises(ValueError, match="pairs"):
        ntk.kernel_split(jf, y, [[0, 400]])
    with pytest.raises(ValueError, match="JacobianFactors"):
        ntk.kernel_blocks((jf.deltas, jf.activations), [[0, 1]])


# --------------------------------------------------------------------------- spectrum
def _linear_model(in_features, L, channels, seed=0):
    torch.manual_seed(seed)
    enc = PositionalEncoding(L, in_features=in_features)
    return torch.nn.Sequential(enc, torch.nn.Linear(2 * L * in_features, channels)).double()


def _gd(model, x, y, lr, steps):
    m = copy.deepcopy(model)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        ((m(X) - Y) ** 2).mean().backward()
        opt.step()
    return m


@pytest.mark.parametrize("grid_shape,channels", [((24,), 1), ((6, 5), 3)])
def test_linear_model_gd_follows_the_spectral_prediction_exactly(grid_shape, channels):
    """For a linear model the NTK is constant, so the residual component along
    eigenvector k is multiplied by exactly 1 - 2 lr lambda_k / (N C^2) per step."""
    x = grid_coordinates(grid_shape)
    n = x.shape[0]
    y = np.random.default_rng(1).normal(size=(n, channels))
    model = _linear_model(len(grid_shape), 2, channels)
    lr, steps = 0.3, 25
    trained = _gd(model, x, y, lr, steps)
    jf = ntk.jacobian_factors(model, x)
    lam, U = ntk.eigen(ntk.trace_ntk(jf))
    r0 = _outputs(model, x) - y
    r1 = _outputs(trained, x) - y
    pred = ntk.gd_spectral_prediction(lam, U, r0, lr, steps, channels)
    assert pred["scale"] == pytest.approx(2 * lr / (n * channels ** 2))
    assert np.abs(pred["residual"] - r1).max() <= 1e-10 * np.abs(r1).max()
    measured = ((U.T @ r1) ** 2).sum(1)
    assert np.allclose(pred["energy"], measured, rtol=1e-8, atol=1e-12 * measured.max())
    # and the change is far from trivial: the top components decayed a lot
    assert measured[0] < 0.5 * ((U.T @ r0) ** 2).sum(1)[0]
    # at several horizons, as the analysis compares them with the recorded band energies
    horizons = [1, 7, steps]
    later = np.stack([_outputs(_gd(model, x, y, lr, t), x) - y for t in horizons])
    check = ntk.gd_band_check(lam, U, r0, later, horizons, grid_shape, [[0, 2], [2, np.inf]], lr,
                              y)
    assert check["predicted_band"].shape == (3, 2)
    assert np.all(check["prediction_error"] < 1e-8)
    assert np.allclose(check["predicted_band"], check["measured_band"], rtol=1e-8)
    assert np.all(np.diff(check["measured_band"][:, 0]) < 0)       # the low band converged
    assert check["sharpness"] == pytest.approx(pred["scale"] * lam[0]) and check["sharpness"] < 2


def test_mlp_one_small_gd_step_matches_the_kernel_to_first_order():
    """For an MLP the prediction is first order: one tiny step agrees to
    O(lr), so a wrong normalisation (a factor 2 or C) would show at once."""
    model, x, y = _setup(None, 2, 3, n=30)
    model = model.double()
    lr = 1e-4
    jf = ntk.jacobian_factors(model, x)
    # the full NC x NC kernel from autograd: r <- r - (2 lr / (N C)) K r exactly to first order
    J = _jacobians(model, x)
    K = np.einsum("icq,jdq->icjd", J, J)
    r0 = jf.outputs - y
    r1 = _outputs(_gd(model, x, y, lr, 1), x) - y
    want = r0 - 2 * lr / (30 * 3) * np.einsum("icjd,jd->ic", K, r0)
    assert np.abs(r1 - want).max() <= 1e-3 * np.abs(r1 - r0).max()
    # the trace-NTK prediction is close (channel coupling is small) but not exact
    lam, U = ntk.eigen(ntk.trace_ntk(jf))
    pred = ntk.gd_spectral_prediction(lam, U, r0, lr, 1, 3)["residual"]
    err = np.linalg.norm(pred - r1) / np.linalg.norm(r1 - r0)
    assert err < 0.5


def test_band_gains_against_explicit_fourier_vectors():
    shape = (4, 6)
    S = 24
    rng = np.random.default_rng(2)
    A = rng.normal(size=(S, S))
    theta = A @ A.T
    rr, cc = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    bands = np.array([[0, 1], [1, 2.5], [2.5, np.inf], [10, 11]])
    want = []
    for lo, hi in bands:
        vals = []
        for ky in range(4):
            for kx in range(6):
                fy, fx = (ky + 2) % 4 - 2, (kx + 3) % 6 - 3   # signed DFT frequencies
                f = np.hypot(fy, fx)
                if lo < f <= hi:
                    phi = np.exp(-2j * np.pi * (ky * rr / 4 + kx * cc / 6)).ravel() / np.sqrt(S)
                    vals.append(np.real(phi.conj() @ theta @ phi))
        want.append(np.mean(vals) if vals else np.nan)
    got = ntk.band_gains(theta, shape, bands)
    assert np.isnan(got[3]) and np.isnan(want[3])
    assert np.allclose(got[:3], want[:3], rtol=1e-12)


def test_spectrum_summary_on_a_known_kernel():
    n = 32
    t = np.arange(n)
    # eigenvectors: cosines/sines of increasing frequency; eigenvalues 2^-k
    U = np.linalg.qr(np.stack([np.cos(2 * np.pi * (k // 2) * t / n + (k % 2) * np.pi / 2)
                               for k in range(1, n + 1)], 1))[0]
    lam = 2.0 ** -np.arange(n)
    theta = (U * lam) @ U.T
    lam2, U2 = ntk.eigen(theta)
    assert np.allclose(lam2, lam, atol=1e-14)
    freqs = ntk.eigenvector_frequencies(np.cos(2 * np.pi * 3 * t / n)[:, None], (n,))
    assert freqs[0] == pytest.approx(3.0)
    r = U2[:, :1] * 2.0       # the residual on the top eigenvector only
    s = ntk.spectrum_summary(lam2, U2, r, (n,))
    assert s["effective_rank"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum())
    assert s["rank_90"] == 4            # 1 + 1/2 + 1/4 + 1/8 = 1.875 >= 0.9 * 2
    assert s["decay_exponent"] > 1
    assert s["residual_top_share"] == pytest.approx(1.0)
    assert s["residual_alignment"] == pytest.approx(lam[0] / lam.mean())
    assert s["energy"][0] == pytest.approx(4.0)


def test_subgrid_rows_are_a_strided_grid():
    rows, shape, stride = ntk.subgrid((7, 9), 20)
    assert stride == 2 and shape == (4, 5)
    coords = grid_coordinates((7, 9))[rows]
    assert np.allclose(coords.reshape(4, 5, 2)[0, :, 0], grid_coordinates((9,))[::2, 0])
    assert np.array_equal(ntk.subgrid((7, 9), 63)[0], np.arange(63))
    with pytest.raises(ValueError, match="max_samples"):
        ntk.subgrid((7, 9), 0)


# --------------------------------------------------------------------------- Adam
def _regions_8x8():
    """16 regions of 2x2 pixels on an 8x8 grid; regions touch across grid edges."""
    rr, cc = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    rid = ((rr // 2) * 4 + cc // 2).ravel()
    p = adjacent_pairs((8, 8))
    a, b = rid[p[:, 0]], rid[p[:, 1]]
    keep = a != b
    A = sp.coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(16, 16))
    return rid, ((A + A.T) > 0).astype(np.int8).tocsr()


def _adam_replay(model, x, y, batches, lr):
    """Independent replay with torch.optim.Adam: the state before and after the
    last step, and the parameter change."""
    m = copy.deepcopy(model).double()
    params = list(m.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    for k, b in enumerate(batches):
        if k == len(batches) - 1:
            before = [p.detach().clone() for p in params]
            m_prev = [opt.state[p]["exp_avg"].clone() for p in params]
            state_model = copy.deepcopy(m)
        opt.zero_grad()
        ((m(X[b]) - Y[b]) ** 2).mean().backward()
        opt.step()
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts]).numpy()  # noqa: E731
    return (state_model, flat(m_prev), flat([opt.state[p]["exp_avg_sq"] for p in params]),
            int(opt.state[params[0]]["step"]), flat([p.detach() - b for p, b in
                                                     zip(params, before)]))


def test_adam_one_step_prediction_and_its_split():
    model = build_model(TrainConfig(width=24, depth=2, seed=3), 2, 3)
    x = grid_coordinates((8, 8))
    y = np.random.default_rng(0).uniform(size=(64, 3))
    rng = np.random.default_rng(5)
    order = np.concatenate([rng.permutation(64) for _ in range(26)])
    batches = [order[k * 16:(k + 1) * 16] for k in range(101)]   # 100 warm-up steps
    rid, adj = _regions_8x8()
    lr = 1e-3
    res = ntk.adam_step_split(model, x, y, batches, (rid, adj), lr, n_pairs=50000, seed=1)

    # the prediction of the one-step change, with the actual update
    assert stats.pearsonr(res["predicted"], res["actual"]).statistic > 0.9999
    assert res["step"] == 101 and res["batch_size"] == 16
    assert res["decomposition_error"] < 1e-10 and res["update_error"] < 1e-10
    terms = res["terms"]
    assert set(terms) == {"momentum", *ntk.PAIR_CLASSES}

    # the same from autograd per-sample gradients and the replayed optimiser state
    at, m_prev, v, t, dtheta = _adam_replay(model, x, y, batches, lr)
    g = _loss_gradients(at, x, y)
    want_total = g @ dtheta
    assert np.allclose(res["predicted"], want_total, rtol=1e-9,
                       atol=1e-12 * np.abs(want_total).max())
    b1, b2, eps = 0.9, 0.999, 1e-8
    D = 1 / (np.sqrt(v / (1 - b2 ** t)) + eps)
    B = batches[-1]
    coef = -lr * (1 - b1) / ((1 - b1 ** t) * B.size)
    contrib = coef * (g * D) @ g[B].T                               # (N, |B|)
    same = rid[:, None] == rid[B][None, :]
    near = adj.toarray()[rid][:, rid[B]] > 0
    is_self = np.arange(64)[:, None] == B[None, :]
    want = {"self": (contrib * is_self).sum(1),
            "same_region": (contrib * (same & ~is_self)).sum(1),
            "neighbour_region": (contrib * near).sum(1),
            "far": (contrib * (~same & ~near)).sum(1),
            "momentum": -lr * b1 / (1 - b1 ** t) * g @ (D * m_prev)}
    top = np.abs(res["predicted"]).max()
    for k, w in want.items():
        assert np.abs(terms[k] - w).max() <= 1e-10 * top, k
    assert res["pair_count"] == {"self": 16, "same_region": int((same & ~is_self).sum()),
                                 "neighbour_region": int(near.sum()),
                                 "far": int((~same & ~near).sum())}
    masks = {"self": is_self, "same_region": same & ~is_self, "neighbour_region": near,
             "far": ~same & ~near}
    for k, mask in masks.items():   # sampled means (50000 draws) against the exact ones
        assert res["mean_abs_pair"][k] == pytest.approx(np.abs(contrib[mask]).mean(), rel=0.03)
        gram = (g @ g[B].T)[mask]
        assert res["mean_abs_gram"][k] == pytest.approx(np.abs(gram).mean(), rel=0.03)
    # the update is not the gradient direction (what the GD prediction assumed)
    assert res["cos_batch_gradient"] < 0.99


def test_adam_step_split_rejects_bad_input():
    model = build_model(TrainConfig(width=8, depth=1), 2, 3)
    x = grid_coordinates((8, 8))
    y = np.zeros((64, 3))
    rid, adj = _regions_8x8()
    with pytest.raises(ValueError, match="repeat"):
        ntk.adam_step_split(model, x, y, [[1, 1, 2]], (rid, adj), 1e-3)
    with pytest.raises(ValueError, match="non-empty"):
        ntk.adam_step_split(model, x, y, [], (rid, adj), 1e-3)
    with pytest.raises(ValueError, match="region_id"):
        ntk.adam_step_split(model, x, y, [[0, 1]], (rid[:5], adj), 1e-3)
    with pytest.raises(ValueError, match="groups"):
        ntk.adam_step_split(model, x, y, [[0, 1]], rid, 1e-3)
    with pytest.raises(ValueError, match="lr"):
        ntk.adam_step_split(model, x, y, [[0, 1]], (rid, adj), -1.0)


def test_patch_pairs_of_the_analysis_split_cleanly():
    """On the analysis' own neighbour pairs of a 2D model the kernel part has
    (almost) no negative values: the negative gradient cosines come from the
    residuals."""
    model = build_model(TrainConfig(width=32, depth=2, seed=0), 2, 3)
    x = grid_coordinates((12, 12))
    y = np.random.default_rng(0).uniform(size=(144, 3))
    split = ntk.kernel_split(ntk.jacobian_factors(model, x), y, patch_pairs((12, 12)))
    assert np.mean(split["kernel"] < -0.5) == 0
    assert np.mean(split["residual"] < -0.5) > 0


# --------------------------------------------------------------------------- in the analysis
def _analysed(optimizer, lr, tmp_path):
    from regions.study.analysis import analyse_run
    from regions.study.signals import sum_of_sinusoids
    from regions.study.store import load_run, save_run
    from regions.study.training import train

    signal = sum_of_sinusoids(n=64, ks=(2, 5), seed=0)
    cfg = TrainConfig(width=16, depth=2, optimizer=optimizer, lr=lr, batch_size=16, epochs=30,
                      record_predictions=True, checkpoints=(0, 5, 30), seed=0)
    run = train(signal, cfg, progress=False, threads=1)
    job = {"name": "t", "seed": 0, "analyse": [0, 5, 30], "n_boot": 20, "eps": 0.5,
           "window": 0.2, "n_distant": 50, "encoded_crossings": "all"}
    res = analyse_run(run, job)
    save_run(res, str(tmp_path), "t_s0", "key")
    back, _ = load_run(str(tmp_path), "t_s0")
    return run, res, back


def test_the_analysis_stores_the_spectral_gd_prediction(tmp_path):
    run, res, back = _analysed("gd", 0.05, tmp_path)
    cp = res.checkpoints[1]                                   # epoch 5, next analysed: 30
    s = cp.spectrum
    assert s.stride == 1 and s.rows.size == 64 and s.horizon == 25 and cp.adam_step is None
    ep = res.band_energy.epochs
    assert s.predicted_band.shape == res.band_energy.ratio.shape
    inside = (ep > 5) & (ep <= 30)
    assert np.all(np.isfinite(s.prediction_error[inside])) \
        and np.all(np.isnan(s.prediction_error[~inside]))
    # one GD step ahead the frozen kernel is right to first order
    assert s.prediction_error[ep == 6][0] < 0.05
    assert s.sharpness == pytest.approx(s.step_scale * s.eigenvalues[0])
    # one channel: the kernel part never confuses, the gradient cosine is s_ij * sign(r_i r_j)
    assert cp.confusion_kernel.neighbour_below == 0
    assert cp.kernel_split.pearson_product == pytest.approx(1.0)
    assert np.allclose(np.abs(cp.confusion.neighbour), np.abs(cp.confusion_kernel.neighbour))
    b = back.checkpoints[1]
    assert np.array_equal(b.spectrum.predicted_band, s.predicted_band, equal_nan=True)
    assert b.kernel_split == cp.kernel_split


def test_the_analysis_stores_the_adam_step(tmp_path):
    run, res, back = _analysed("adam", 1e-3, tmp_path)
    for cp in res.checkpoints:
        a = cp.adam_step
        assert a.batch_size == 16 and a.warmup == 20 and a.step == 21
        assert a.pearson > 0.99 and a.decomposition_error < 1e-10
        assert sum(a.term_share.values()) == pytest.approx(1.0)
        assert sum(a.pair_count.values()) == 64 * 16
        assert np.allclose(sum(a.terms.values()), a.predicted, rtol=0, atol=1e-12)
        assert cp.spectrum.horizon is None              # Adam: no GD prediction
    b = back.checkpoints[-1].adam_step
    assert b.pair_count == res.checkpoints[-1].adam_step.pair_count
    assert np.array_equal(b.terms["far"], res.checkpoints[-1].adam_step.terms["far"])


def test_spectrum_summary_ignores_the_rounding_level_eigenvectors():
    """A rank-5 kernel on 64 samples: the 59 null eigenvectors are any basis of
    the null space (two eigensolvers give different ones; the tiny preset's
    pinned numbers moved when scipy's eigh was replaced by torch's). The
    summary must not depend on which basis: rotate it at random."""
    rng = np.random.default_rng(4)
    t = np.arange(64)
    A = np.stack([np.cos(2 * np.pi * k * t / 64) for k in range(5)], 1) * 2.0 ** -np.arange(5)
    lam, U = ntk.eigen(A @ A.T)
    assert np.sum(lam > ntk.ROUNDING_FLOOR * lam[0]) == 5
    Q = np.linalg.qr(rng.normal(size=(59, 59)))[0]
    U2 = U.copy()
    U2[:, 5:] = U[:, 5:] @ Q
    lam2 = lam.copy()
    lam2[5:] = rng.uniform(-1e-15, 1e-15, 59) * lam[0]       # rounding-level values
    r = rng.normal(size=(64, 1))
    a = ntk.spectrum_summary(lam, U, r, (64,))
    b = ntk.spectrum_summary(lam2, U2, r, (64,))
    for k in ("decay_exponent", "frequency_order", "top_frequency", "effective_rank", "rank_90"):
        assert a[k] == pytest.approx(b[k], rel=1e-9), k
    assert a["top_frequency"] == pytest.approx(np.mean([0, 1, 2, 3, 4][:5]), abs=1e-9)
