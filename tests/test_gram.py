"""The factorised per-sample gradient Gram against torch.func per-sample
gradients, and the first-order loss change against a real gradient step.

Independent references: ``torch.func.vmap(grad(loss_i))`` materialises every
per-sample gradient (feasible on small nets); one full-batch GD step taken by
torch's autograd gives the actual loss change.
"""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.func import functional_call, grad, vmap

from regions.study.grid import distant_pairs, patch_pairs
from regions.study.factors import backprop_factors
from regions.study.gram import confusion, gradient_norms, gram, gram_pairs, predicted_loss_change
from regions.study.training_config import TrainConfig, build_model


def _per_sample_gradients(model, x, y):
    m = model.double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    buffers = dict(m.named_buffers())

    def loss(p, xi, yi):
        out = functional_call(m, (p, buffers), (xi[None],))
        return ((out[0] - yi) ** 2).mean()

    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, torch.as_tensor(x), torch.as_tensor(y))
    return torch.cat([v.reshape(v.shape[0], -1) for v in g.values()], dim=1).numpy()


def _setup(encoding, dim, n=48, channels=2, seed=0, leaky=False):
    model = build_model(TrainConfig(width=12, depth=3, encoding=encoding, seed=seed), dim, channels)
    if leaky:
        model = torch.nn.Sequential(*[torch.nn.LeakyReLU(0.1) if isinstance(m, torch.nn.ReLU)
                                      else m for m in model])
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, dim))
    y = rng.normal(size=(n, channels))
    return model, x, y


CASES = [(None, 1), (None, 2), (3, 1), (2, 2)]


@pytest.mark.parametrize("encoding,dim", CASES)
def test_gram_matches_per_sample_gradients(encoding, dim):
    model, x, y = _setup(encoding, dim)
    g = _per_sample_gradients(model, x, y)
    ref = g @ g.T
    G = gram(model, x, y)
    assert G.dtype == np.float64 and G.shape == ref.shape
    assert np.abs(G - ref).max() <= 1e-8 * np.abs(ref).max()
    rows, cols = np.array([3, 0, 7]), np.arange(10, 20)
    assert np.allclose(gram(model, x, y, rows, cols), ref[rows][:, cols], rtol=1e-8, atol=0)

    pairs = np.array([[0, 1], [5, 5], [2, 40], [47, 3]])
    vals = gram_pairs(model, x, y, pairs)
    want = np.einsum("pk,pk->p", g[pairs[:, 0]], g[pairs[:, 1]])
    assert np.allclose(vals, want, rtol=1e-8, atol=1e-12 * np.abs(ref).max())
    norms = np.linalg.norm(g, axis=1)
    assert np.allclose(gradient_norms(model, x, y), norms, rtol=1e-8)
    cos = confusion(model, x, y, pairs)
    assert np.allclose(cos, want / (norms[pairs[:, 0]] * norms[pairs[:, 1]]), rtol=1e-8, atol=1e-12)
    assert cos[1] == pytest.approx(1.0)


def test_gram_leaky_relu_and_factor_shapes():
    model, x, y = _setup(None, 2, leaky=True)
    g = _per_sample_gradients(model, x, y)
    ref = g @ g.T
    assert np.abs(gram(model, x, y) - ref).max() <= 1e-8 * np.abs(ref).max()
    deltas, acts = backprop_factors(model, x, y)
    assert [d.shape for d in deltas] == [(48, 12)] * 3 + [(48, 2)]
    assert [a.shape for a in acts] == [(48, 2)] + [(48, 12)] * 3


def test_gram_does_not_change_the_model():
    model, x, y = _setup(2, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gram(model, x, y)
    after = model.state_dict()
    assert all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k])
               for k in before)


def _brute_split(G, rid, adj, lr):
    n = G.shape[0]
    same = rid[:, None] == rid[None, :]
    A = adj.toarray().astype(bool)
    np.fill_diagonal(A, False)
    nbr = A[rid][:, rid]
    eye = np.eye(n, dtype=bool)
    s = -lr / n
    return {"self": s * np.diag(G), "same_region": s * (G * (same & ~eye)).sum(1),
            "neighbour_region": s * (G * nbr).sum(1), "far": s * (G * (~same & ~nbr)).sum(1),
            "total": s * G.sum(1)}


@pytest.mark.parametrize("block", [7, 1024])
def test_predicted_change_split_matches_brute_force(block):
    model, x, y = _setup(None, 2, n=60, seed=3)
    rng = np.random.default_rng(1)
    rid = rng.integers(0, 9, size=60)
    adj = sp.random(9, 9, density=0.3, random_state=2, format="csr") != 0
    adj = adj + adj.T
    adj.setdiag(True)  # the diagonal must be ignored
    lr = 0.05
    out = predicted_loss_change(model, x, y, lr, (rid, adj), block=block)
    want = _brute_split(gram(model, x, y), rid, adj, lr)
    for k in want:
        assert np.allclose(out[k], want[k], rtol=1e-10, atol=1e-14), k
    parts = out["self"] + out["same_region"] + out["neighbour_region"] + out["far"]
    assert np.allclose(parts, out["total"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("encoding,dim", [(None, 2), (2, 1)])
def test_predicted_change_matches_one_gradient_step(encoding, dim):
    model, x, y = _setup(encoding, dim, n=64, channels=1, seed=5)
    model = model.double()
    lr = 1e-4
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    with torch.no_grad():
        before = ((model(X) - Y) ** 2).mean(1).numpy()
    pred = predicted_loss_change(model, x, y, lr, (np.zeros(64, dtype=np.int64), None))
    loss = ((model(X) - Y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
        after = ((model(X) - Y) ** 2).mean(1).numpy()
    actual = after - before
    rel = np.linalg.norm(actual - pred["total"]) / np.linalg.norm(pred["total"])
    assert rel < 1e-2
    assert actual.sum() / pred["total"].sum() == pytest.approx(1.0, rel=1e-2)
    # one region: everything but self is "same region"
    assert np.all(pred["neighbour_region"] == 0)
    assert np.abs(pred["far"]).max() <= 1e-12 * np.abs(pred["total"]).max()


def test_neighbour_and_distant_pairs():
    p = patch_pairs((64, 64))
    assert p.shape == (21 * 21 * 36, 2) and np.all(p[:, 0] < p[:, 1])
    r0, c0 = np.divmod(p[:, 0], 64)
    r1, c1 = np.divmod(p[:, 1], 64)
    assert np.abs(r0 - r1).max() <= 2 and np.abs(c0 - c1).max() <= 2
    assert len(np.unique(p, axis=0)) == len(p)
    q = patch_pairs((64, 64), n_patches=10, seed=2)
    assert q.shape == (360, 2)
    assert np.array_equal(q, patch_pairs((64, 64), n_patches=10, seed=2))
    assert patch_pairs((10,), patch=3).tolist()[:3] == [[0, 1], [0, 2], [1, 2]]

    d = distant_pairs((64, 64), 500, seed=0)
    r0, c0 = np.divmod(d[:, 0], 64)
    r1, c1 = np.divmod(d[:, 1], 64)
    assert np.all(r0 < 25) and np.all(r1 >= 39)
    assert np.all(np.minimum(c0, 63 - c0) < 25) and np.all(np.minimum(c1, 63 - c1) < 25)
    assert np.all((c0 < 25) != (c1 < 25))  # opposite corners
    d1 = distant_pairs((2048,), 100, seed=0)
    assert np.all(d1[:, 1] - d1[:, 0] >= 2048 - 2 * 800)


def test_bad_inputs_raise():
    model, x, y = _setup(None, 2)
    with pytest.raises(ValueError, match="channels"):
        gram(model, x, y[:, :1])
    with pytest.raises(ValueError, match="same number of rows"):
        gram(model, x[:5], y)
    with pytest.raises(ValueError, match="encoding mismatch|features"):
        gram(model, np.zeros((48, 3)), y)
    with pytest.raises(ValueError, match="finite"):
        gram(model, x, np.full_like(y, np.nan))
    with pytest.raises(ValueError, match="pairs"):
        gram_pairs(model, x, y, np.array([[0, 100]]))
    with pytest.raises(ValueError, match="Sequential"):
        gram(torch.nn.Linear(2, 2), x, y)
    with pytest.raises(ValueError, match="region_id"):
        predicted_loss_change(model, x, y, 0.1, (np.zeros(3, dtype=int), None))
    with pytest.raises(ValueError, match="region_adjacency"):
        predicted_loss_change(model, x, y, 0.1, (np.arange(48), sp.eye(4, format="csr")))
    with pytest.raises(ValueError, match="patch"):
        patch_pairs((2, 2), patch=3)
    with pytest.raises(ValueError, match="quadrant"):
        distant_pairs((8, 8), 3, quadrant=5)
