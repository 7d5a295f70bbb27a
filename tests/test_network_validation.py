"""``as_network`` refuses parameters a float64 network cannot hold faithfully (NaN
or infinite slopes, booleans, complex numbers, strings, objects, huge integers, empty
layers, meta tensors, compositions that overflow) and reads the rest exactly: a
torch forward pass is the reference."""
import numpy as np
import pytest
import torch

import regions
from regions import as_network


def _torch_forward(model, x):
    with torch.no_grad():
        return model.double()(torch.as_tensor(x, dtype=torch.float64)).numpy()


X = np.random.default_rng(0).uniform(-2, 2, size=(300, 2))


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_leaky_slope_is_refused(slope):
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.LeakyReLU(slope),
                                torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"layer 1 \(LeakyReLU\): negative_slope is .*finite"):
        as_network(model)


def test_finite_leaky_slopes_match_torch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.LeakyReLU(-0.5),
                                torch.nn.Linear(5, 5), torch.nn.LeakyReLU(3.0),
                                torch.nn.Linear(5, 1))
    net = as_network(model)
    np.testing.assert_allclose(net.forward(X), _torch_forward(model, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad,dtype", [
    (np.ones((3, 2), dtype=bool), "bool"),
    (np.ones((3, 2), dtype=complex), "complex128"),
    (np.array([["1", "2"]] * 3), "<U1"),
    (np.array([[1.0, None]] * 3, dtype=object), "object"),
    (torch.ones(3, 2, dtype=torch.complex64), "complex64"),
    (torch.ones(3, 2, dtype=torch.bool), "bool"),
])
def test_non_real_parameters_are_refused(bad, dtype):
    pairs = [(bad, np.zeros(3)), (np.ones((1, 3)), np.zeros(1))]
    with pytest.raises(ValueError, match=f"pair 0 W has dtype {dtype}.*real numbers"):
        as_network(pairs)
    with pytest.raises(ValueError, match=f"state_dict entry '0' W has dtype {dtype}"):
        as_network({"0.weight": bad, "1.weight": torch.ones(1, 3)})


def test_integer_parameters_are_exact_and_huge_ones_refused():
    W0 = np.array([[1, -2], [3, 0], [-1, 1]])
    net = as_network([(W0, np.array([0, 1, -1])), (np.array([[1, 1, 1]]), np.array([2]))])
    assert net.weights[0].dtype == np.float64
    z = np.maximum(X @ W0.T + np.array([0, 1, -1]), 0)
    np.testing.assert_array_equal(net.forward(X)[:, 0], z.sum(axis=1) + 2)
    big = np.full((3, 2), 2 ** 53 + 1, dtype=np.int64)   # becomes 2**53 in float64
    with pytest.raises(ValueError, match=r"2\*\*53"):
        as_network([(big, np.zeros(3)), (np.ones((1, 3)), np.zeros(1))])


def test_low_precision_state_dicts_read_their_values():
    # bfloat16 has no numpy dtype: it used to raise a TypeError from .numpy()
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))
    for dtype in (torch.bfloat16, torch.float16):
        low = model.to(dtype)
        net = as_network(low.state_dict())
        np.testing.assert_allclose(net.forward(X), _torch_forward(low, X), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("W", [np.ones((0, 2)), np.ones((3, 0))])
def test_empty_layers_are_refused(W):
    pairs = [(W, np.zeros(W.shape[0])), (np.ones((1, W.shape[0])), np.zeros(1))]
    with pytest.raises(ValueError, match="at least one input and one output"):
        as_network(pairs)
    with pytest.raises(ValueError, match="at least one input and one output"):
        as_network(torch.nn.Sequential(torch.nn.Linear(W.shape[1], W.shape[0]), torch.nn.ReLU(),
                                       torch.nn.Linear(W.shape[0], 1)))


def test_meta_tensors_are_refused():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    for source in (model, model.state_dict(), [(model[0].weight, model[0].bias)]):
        with pytest.raises(ValueError, match="'meta' device"):
            as_network(source)


def test_composed_linear_layers_that_overflow_are_refused():
    # two Linear layers with no activation between them are multiplied into one
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)).double()
    with torch.no_grad():
        model[0].weight.fill_(1e200)
        model[1].weight.fill_(1e200)
    with pytest.raises(ValueError, match="composition .* non-finite|non-finite .*composition"):
        as_network(model)


def test_mismatched_chain_is_refused():
    with pytest.raises(ValueError, match="expects 4 inputs but .* gives 3"):
        as_network([(np.ones((3, 2)), np.zeros(3)), (np.ones((1, 4)), np.zeros(1))])


def test_a_partition_of_a_validated_network_still_matches_torch():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.LeakyReLU(0.1),
                                torch.nn.Linear(8, 1))
    p = regions.partition(model, ((-2, 2), (-2, 2)))
    A, c = p.affine
    r = p.locate(X)
    np.testing.assert_allclose(np.einsum("md,md->m", A[r, 0], X) + c[r, 0],
                               _torch_forward(model, X)[:, 0], atol=1e-9)
