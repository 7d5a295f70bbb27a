"""The back-propagation factors of an MLP's per-sample gradients, and the
checks of what is passed to them.

For an MLP ``z_l = W_l a_{l-1} + b_l``, ``a_l = act(z_l)`` with per-sample
loss ``loss_i = mean_c (f_c(x_i) - y_{i,c})^2``, the gradient of ``loss_i``
with respect to ``(W_l, b_l)`` is ``(delta_{l,i} a_{l-1,i}^T, delta_{l,i})``
with ``delta_{L+1,i} = dloss_i/df = 2 (f_i - y_i) / C`` and
``delta_{l,i} = D_l(x_i) W_{l+1}^T delta_{l+1,i}`` (``D_l`` the activation
slopes). ``a_0`` is the network input after the encoding.
:func:`forward_factors` is the float64 forward pass layer by layer and
:func:`backprop_factors` the ``(deltas, activations)`` of every ``Linear``
layer; :mod:`regions.study.gram` and :mod:`regions.study.ntk` build their
products from them without materialising per-sample gradients.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

__all__ = ["forward_factors", "backprop_factors", "factors_of", "as_sequential", "as_array",
           "check_inputs", "check_index", "check_pairs"]

_PASS = (torch.nn.Identity, torch.nn.Dropout, torch.nn.Flatten)


def as_sequential(model):
    if isinstance(model, torch.nn.Sequential):
        return model
    raise ValueError(f"model must be a torch.nn.Sequential of [encoding,] Linear, ReLU, ..., "
                     f"Linear (e.g. from regions.study.training_config.build_model), got "
                     f"{type(model).__name__}")


def as_array(a, name, ndim_ok, dtype=np.float64):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=dtype)
    if a.ndim not in ndim_ok:
        raise ValueError(f"{name} must have {' or '.join(str(n) for n in ndim_ok)} dimensions, "
                         f"got shape {a.shape}")
    return a


def check_inputs(inputs, targets=None):
    """``inputs`` as ``(N, d)`` float64 (and ``targets`` as ``(N, C)``), finite."""
    x = as_array(inputs, "inputs", (1, 2))
    if x.ndim == 1:
        x = x[:, None]
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs must be finite (found NaN or inf)")
    if targets is None:
        return x, None
    y = as_array(targets, "targets", (1, 2))
    if y.ndim == 1:
        y = y[:, None]
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and targets must have the same number of rows, got "
                         f"{x.shape[0]} and {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError("inputs and targets must be finite (found NaN or inf)")
    return x, y


def check_index(idx, n, name):
    if idx is None:
        return np.arange(n)
    a = np.asarray(idx)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), got {a.shape}")
        return np.flatnonzero(a)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer indices or a boolean mask, got dtype {a.dtype}")
    a = a.astype(np.int64).ravel()
    if a.size and (a.min() < -n or a.max() >= n):
        raise ValueError(f"{name} has indices outside 0..{n - 1}")
    return a


def check_pairs(pairs, n):
    p = np.asarray(pairs)
    if p.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"pairs must be a (P, 2) integer array of sample indices, got shape "
                         f"{p.shape} dtype {p.dtype}")
    if p.min() < 0 or p.max() >= n:
        raise ValueError(f"pairs has indices outside 0..{n - 1}")
    return p.astype(np.int64)


def forward_factors(model, inputs):
    """The float64 forward pass of an MLP, layer by layer: what every factor
    formula of this module (and of :mod:`regions.study.ntk`) is built from.

    Parameters
    ----------
    model : torch.nn.Sequential
        ``[encoding,] Linear, ReLU|LeakyReLU, ..., Linear`` (``Identity``,
        ``Dropout`` and ``Flatten`` pass through; dropout is treated as off).
    inputs : array_like
        ``(N, d)`` coordinates as fed to the model (before the encoding).

    Returns
    -------
    linears : list of torch.nn.Linear
        The Linear layers of a float64 copy of the model, in order.
    derivs : list
        ``derivs[l]`` is the ``(N, n_l)`` float64 tensor of activation slopes
        after the l-th Linear layer (``None`` for the output layer).
    activations : list of torch.Tensor
        ``activations[l]`` is ``(N, n_{l-1})`` float64, the input of the l-th
        Linear layer (``activations[0]`` is the encoded input).
    outputs : torch.Tensor
        ``(N, C)`` float64 network outputs.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> lin, der, act, out = forward_factors(m, np.zeros((3, 2)))
    >>> len(lin), der[-1] is None, [a.shape[1] for a in act], tuple(out.shape)
    (2, True, [2, 4], (3, 1))
    """
    model = as_sequential(model)
    x, _ = check_inputs(inputs)
    if not list(model):
        raise ValueError("model is an empty Sequential")
    mods = list(copy.deepcopy(model).double())
    h = torch.as_tensor(x, dtype=torch.float64)
    start = 0
    if not isinstance(mods[0], (torch.nn.Linear,) + _PASS):
        enc = mods[0]
        if any(p.requires_grad for p in enc.parameters()):
            warnings.warn("the encoding module has trainable parameters; the Gram covers only "
                          "the Linear layers' parameters", RuntimeWarning, stacklevel=3)
        try:
            with torch.no_grad():
                h = enc(h)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"encoding mismatch: the first module {type(enc).__name__} fails on "
                             f"inputs of shape {x.shape}: {err}") from None
        start = 1
    linears, slopes = [], []  # slopes[l] = activation slope after linear l (None = none)
    for i, m in enumerate(mods[start:], start):
        if isinstance(m, torch.nn.Linear):
            linears.append(m)
            slopes.append(None)
        elif isinstance(m, torch.nn.ReLU):
            slope = 0.0
        elif isinstance(m, torch.nn.LeakyReLU):
            slope = float(m.negative_slope)
        elif isinstance(m, _PASS):
            continue
        else:
            raise ValueError(f"module {i} ({type(m).__name__}) is not supported: accepted are an "
                             f"encoding first, then Linear, ReLU, LeakyReLU, Identity, Dropout, "
                             f"Flatten")
        if not isinstance(m, torch.nn.Linear):
            if not linears or slopes[-1] is not None:
                raise ValueError(f"module {i} ({type(m).__name__}): an activation must follow a "
                                 f"Linear layer")
            slopes[-1] = slope
    if not linears:
        raise ValueError("model has no Linear layer")
    if slopes[-1] is not None:
        raise ValueError("model must end with a Linear output layer (no activation after it)")
    if h.shape[1] != linears[0].in_features:
        raise ValueError(f"encoding mismatch: the first Linear layer takes "
                         f"{linears[0].in_features} features, the (encoded) inputs have "
                         f"{h.shape[1]}")
    acts, derivs = [], []
    with torch.no_grad():
        for lin, slope in zip(linears, slopes):
            acts.append(h)
            z = h @ lin.weight.T + lin.bias
            if slope is None:
                h = z
                derivs.append(None)
            else:
                d = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))
                derivs.append(d)
                h = z * d
    return linears, derivs, acts, h


def backprop_factors(model, inputs, targets):
    """Forward activations and backward deltas of every ``Linear`` layer.

    Parameters
    ----------
    model : torch.nn.Sequential
        As in :func:`forward_factors`.
    inputs : array_like
        ``(N, d)`` coordinates as fed to the model (before the encoding).
    targets : array_like
        ``(N, C)`` targets (``(N,)`` is read as one channel).

    Returns
    -------
    deltas : list of ndarray
        ``deltas[l]`` is ``(N, n_l)`` float64, ``dloss_i/dz_l`` for the l-th
        Linear layer (the last one is ``2 (f - y) / C``).
    activations : list of ndarray
        ``activations[l]`` is ``(N, n_{l-1})`` float64, the input of the l-th
        Linear layer (``activations[0]`` is the encoded input).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> d, a = backprop_factors(m, np.zeros((3, 2)), np.zeros((3, 1)))
    >>> [x.shape for x in d], [x.shape for x in a]
    ([(3, 4), (3, 1)], [(3, 2), (3, 4)])
    """
    x, y = check_inputs(inputs, targets)
    linears, derivs, acts, f = forward_factors(model, x)
    if y.shape[1] != linears[-1].out_features:
        raise ValueError(f"targets have {y.shape[1]} channels but the model outputs "
                         f"{linears[-1].out_features}")
    with torch.no_grad():
        C = f.shape[1]
        delta = 2.0 * (f - torch.as_tensor(y)) / C
        deltas = [None] * len(linears)
        deltas[-1] = delta
        for l in range(len(linears) - 2, -1, -1):
            delta = (delta @ linears[l + 1].weight) * derivs[l]
            deltas[l] = delta
    return [d.numpy() for d in deltas], [a.numpy() for a in acts]


def factors_of(model, inputs, targets, factors):
    if factors is not None:
        deltas, acts = factors
        if len(deltas) != len(acts) or not deltas:
            raise ValueError("factors must be (deltas, activations) lists of equal length, as "
                             "returned by backprop_factors")
        return deltas, acts
    return backprop_factors(model, inputs, targets)
