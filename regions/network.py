"""From a user's model to plain float64 weight arrays.

Everything downstream (kernels, features, plots) sees a :class:`Network`:
a list of affine layers ``z_l = W_l a_{l-1} + b_l`` with ``W_l`` shaped
``(out, in)`` as torch stores it, a piecewise-linear activation after every
hidden layer (ReLU, or LeakyReLU with a negative slope) and a final affine
output layer with no activation. An optional input encoding (sin/cos
features, see :mod:`regions.encoding`) sits in front of the first layer.

Accepted models
---------------
* a ``torch.nn.Sequential`` of ``Linear``, ``ReLU``, ``LeakyReLU``
  (``Identity``, ``Dropout`` and ``Flatten`` pass through; an
  :class:`regions.encoding.Encoding` may come first);
* a ``state_dict`` of such a network (``*.weight`` / ``*.bias`` pairs in
  module order; ReLU is assumed between consecutive Linear layers);
* a list of ``(W, b)`` pairs of numpy arrays, ``W`` shaped ``(out, in)``;
  ReLU between them;
* a :class:`Network` (returned as is).

Consecutive Linear layers with no activation between them are composed into
one (their product is affine). A Sequential that ends in an activation gets
an identity output layer, so its last activations are the output.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Network", "as_network"]


@dataclass
class Network:
    """A ReLU / LeakyReLU MLP as float64 arrays.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[l]`` has shape ``(n_l, n_{l-1})``; the last entry is the
        output layer.
    biases : list of ndarray
        ``biases[l]`` has shape ``(n_l,)``.
    slopes : ndarray
        Negative slope of the activation after each hidden layer
        (0.0 for ReLU), shape ``(n_hidden_layers,)``.
    encoding : regions.encoding.Encoding or None
        Input encoding in front of the first layer, if any.
    """

    weights: list
    biases: list
    slopes: np.ndarray
    encoding: object = None
    names: list = field(default_factory=list)

    @property
    def input_dim(self) -> int:
        """Dimension of the coordinate the user feeds (before any encoding)."""
        if self.encoding is not None:
            return int(self.encoding.in_features)
        return int(self.weights[0].shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def widths(self) -> list:
        """Number of neurons in each hidden layer."""
        return [int(W.shape[0]) for W in self.weights[:-1]]

    @property
    def n_hidden(self) -> int:
        """Total number of hidden neurons (the length of an activation pattern)."""
        return int(sum(self.widths))

    @property
    def hidden_layers(self):
        """Iterate ``(W, b, slope)`` over the hidden layers."""
        return zip(self.weights[:-1], self.biases[:-1], self.slopes)

    def pre_activations(self, x):
        """Pre-activations of every hidden layer at points ``x`` (numpy, float64).

        ``x`` is in the network's input space (after the encoding, if any).
        Returns a list of arrays ``(n_points, n_l)``.
        """
        a = np.asarray(x, dtype=np.float64)
        out = []
        for W, b, s in self.hidden_layers:
            z = a @ W.T + b
            out.append(z)
            a = np.where(z > 0, z, s * z)
        return out

    def forward(self, x):
        """Network output at points ``x`` in input space (numpy, float64)."""
        a = np.asarray(x, dtype=np.float64)
        for W, b, s in self.hidden_layers:
            z = a @ W.T + b
            a = np.where(z > 0, z, s * z)
        return a @ self.weights[-1].T + self.biases[-1]

    def patterns(self, x):
        """Activation pattern ``z > 0`` of every hidden neuron, layer-major, bool."""
        zs = self.pre_activations(x)
        return np.concatenate([z > 0 for z in zs], axis=1)

    def sliced(self, origin, basis):
        """The same network fed ``origin + basis @ u`` instead of ``x``.

        Composes the affine slice map into the first layer, so a 1D or 2D
        slice of a high-dimensional input becomes a 1- or 2-input network.
        Only for networks without an encoding (an encoding is not affine).
        """
        if self.encoding is not None:
            raise ValueError("cannot compose an affine slice into an encoded network; "
                             "slice the coordinate before the encoding instead")
        origin = np.asarray(origin, dtype=np.float64)
        basis = np.asarray(basis, dtype=np.float64)
        W0, b0 = self.weights[0], self.biases[0]
        weights = [W0 @ basis] + list(self.weights[1:])
        biases = [b0 + W0 @ origin] + list(self.biases[1:])
        return Network(weights, biases, self.slopes.copy(), None, list(self.names))


def _check_finite(W, b, where):
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError(f"non-finite weights or biases in {where}; "
                         "all parameters must be finite numbers")


def _finish(layers, slopes_after, encoding, names):
    """layers: list of (W, b); slopes_after[i]: activation slope after layer i or None."""
    if not layers:
        raise ValueError("the model has no Linear layer; expected at least one "
                         "Linear (an affine output layer)")
    # compose runs of affine layers with no activation between them
    weights, biases, slopes, merged_names = [], [], [], []
    W, b = layers[0]
    name = names[0]
    for i in range(1, len(layers)):
        if slopes_after[i - 1] is None:
            W2, b2 = layers[i]
            if W2.shape[1] != W.shape[0]:
                raise ValueError(f"{names[i]} expects {W2.shape[1]} inputs but {name} "
                                 f"gives {W.shape[0]}")
            W, b = W2 @ W, W2 @ b + b2
            name = f"{name}+{names[i]}"
        else:
            weights.append(W), biases.append(b), slopes.append(slopes_after[i - 1])
            merged_names.append(name)
            W, b = layers[i]
            if W.shape[1] != weights[-1].shape[0]:
                raise ValueError(f"{names[i]} expects {W.shape[1]} inputs but {name} "
                                 f"gives {weights[-1].shape[0]}")
            name = names[i]
    weights.append(W), biases.append(b), merged_names.append(name)
    if slopes_after[-1] is not None:
        # ends in an activation: its activations are the output
        slopes.append(slopes_after[-1])
        n = W.shape[0]
        weights.append(np.eye(n)), biases.append(np.zeros(n)), merged_names.append("identity output")
    if encoding is not None and weights[0].shape[1] != encoding.out_features:
        raise ValueError(f"the encoding gives {encoding.out_features} features but the first "
                         f"Linear layer expects {weights[0].shape[1]} inputs")
    return Network(weights, biases, np.asarray(slopes, dtype=np.float64), encoding, merged_names)


def _from_sequential(model):
    import torch.nn as nn
    from .encoding import Encoding

    modules = list(model) if isinstance(model, nn.Sequential) else [model]
    passthrough = (nn.Identity, nn.Dropout, nn.Flatten)
    layers, slopes_after, names = [], [], []
    encoding = None
    for i, m in enumerate(modules):
        where = f"layer {i} ({type(m).__name__})"
        if isinstance(m, Encoding):
            if i != 0 or layers:
                raise ValueError(f"{where}: an encoding must be the first module of the Sequential")
            encoding = m
        elif isinstance(m, nn.Linear):
            W = m.weight.detach().cpu().double().numpy().copy()
            b = (m.bias.detach().cpu().double().numpy().copy() if m.bias is not None
                 else np.zeros(W.shape[0]))
            _check_finite(W, b, where)
            layers.append((W, b)), slopes_after.append(None), names.append(where)
        elif isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            if not layers:
                raise ValueError(f"{where}: an activation must follow a Linear layer")
            if slopes_after[-1] is not None:
                raise ValueError(f"{where}: two activations in a row are not supported")
            slopes_after[-1] = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
        elif isinstance(m, passthrough):
            continue
        elif isinstance(m, nn.Sequential):
            raise ValueError(f"{where}: nested Sequential; flatten it with "
                             "nn.Sequential(*inner, ...) first")
        else:
            raise ValueError(
                f"unsupported {where}; accepted modules are Linear, ReLU, LeakyReLU, "
                "Identity, Dropout, Flatten and a regions encoding as the first module")
    return _finish(layers, slopes_after, encoding, names)


def _from_pairs(pairs, names=None):
    layers, names_out = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"entry {i} of the weight list is not a (W, b) pair")
        W = np.asarray(pair[0], dtype=np.float64)
        b = np.asarray(pair[1], dtype=np.float64)
        where = names[i] if names else f"pair {i}"
        if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[0]:
            raise ValueError(f"{where}: expected W shaped (out, in) and b shaped (out,), "
                             f"got {W.shape} and {b.shape}")
        _check_finite(W, b, where)
        layers.append((W.copy(), b.copy())), names_out.append(where)
    slopes_after = [0.0] * (len(layers) - 1) + [None]
    return _finish(layers, slopes_after, None, names_out)


def _from_state_dict(sd):
    keys = [k for k in sd.keys() if k.endswith(".weight")]
    if not keys:
        raise ValueError("the state_dict has no '*.weight' entries")
    pairs, names = [], []
    for k in keys:
        prefix = k[: -len(".weight")]
        W = sd[k]
        W = W.detach().cpu().double().numpy() if hasattr(W, "detach") else np.asarray(W)
        bk = prefix + ".bias"
        if bk in sd:
            b = sd[bk]
            b = b.detach().cpu().double().numpy() if hasattr(b, "detach") else np.asarray(b)
        else:
            b = np.zeros(W.shape[0])
        pairs.append((W, b)), names.append(f"state_dict entry '{prefix}'")
    return _from_pairs(pairs, names)


def as_network(model) -> Network:
    """Convert any accepted model description to a :class:`Network`.

    Raises ``ValueError`` naming the offending layer for unsupported modules,
    mismatched shapes or non-finite parameters.
    """
    if isinstance(model, Network):
        return model
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover
        nn = None
    if nn is not None and isinstance(model, nn.Module):
        return _from_sequential(model)
    if isinstance(model, (dict, OrderedDict)):
        return _from_state_dict(model)
    if isinstance(model, (list, tuple)):
        return _from_pairs(model)
    raise TypeError(f"cannot read a network from {type(model).__name__}; expected a torch "
                    "nn.Sequential, a state_dict, a list of (W, b) pairs or a regions.Network")
