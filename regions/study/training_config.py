"""The configuration of one training run and the model it builds.

:class:`TrainConfig` holds every setting of a run (architecture, encoding,
optimiser, batches, epochs, seed, what is recorded); :func:`build_model`
turns it into the ``torch.nn.Sequential`` of ``[encoding?] Linear, ReLU,
..., Linear`` with PyTorch's default init drawn under
``torch.manual_seed(config.seed)`` (inside a forked RNG, so the caller's
global torch RNG is untouched). A config round-trips through a plain dict
(:meth:`TrainConfig.to_dict`, :meth:`TrainConfig.from_dict`), which is how a
saved :class:`~regions.study.run_record.Run` and the study's job keys
store it.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..encoding import Encoding, PositionalEncoding

__all__ = ["TrainConfig", "build_model", "positional_encoding", "OPTIMIZERS", "SHUFFLES",
           "DEFAULT_LR"]

OPTIMIZERS = ("adam", "sgd", "gd")
SHUFFLES = ("once", "every", "none")

#: Learning rate of a config that gives none, per optimiser. Adam and SGD: the
#: paper's 1e-3. Full-batch GD (``"gd"``): 0.1, from the largest eigenvalue of
#: the loss Hessian at initialisation (:func:`regions.study.training.sharpness`),
#: measured on the quick preset's settings (seeds 0 and 1): 2.2-5.9, so GD is
#: stable there for ``lr < 2 / 5.9 = 0.34``; 0.1 keeps a factor 3.4 from that
#: edge. GD sharpens as it trains: measured at 0.1 after the quick preset's
#: epochs, 1D PE L=5 reaches 28 > 2 / 0.1 (the edge of stability, where the
#: loss oscillates), 2D raw, 2D PE L=5 and 1D raw stay below 7.
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-3, "gd": 0.1}


# --------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    width : int
        Neurons per hidden layer.
    depth : int
        Number of hidden layers (the paper: 2 in 2D, 4 in 1D).
    encoding : None, int or torch.nn.Module
        ``None``: raw coordinates; an int ``L``: the paper's positional
        encoding with ``L`` frequencies (``regions.encoding.PositionalEncoding``);
        a module: placed first in the Sequential as given (copied per model).
    optimizer : {"adam", "sgd", "gd"}
        ``"gd"`` is full-batch gradient descent (``batch_size`` is ignored).
    lr : float or None
        Learning rate; ``None`` takes the optimiser's :data:`DEFAULT_LR`
        (set on construction, so ``config.lr`` is always a number).
    batch_size : int or None
        Mini-batch size; ``None`` (or >= N) is the full batch.
    shuffle : {"once", "every", "none"}
        ``"once"``: one seeded permutation replayed in fixed order every epoch
        (the paper); ``"every"``: a new permutation each epoch; ``"none"``:
        grid order.
    epochs : int
        Number of epochs (passes over the data).
    seed : int
        Seed of the initialisation and of the batch order.
    record_every : int
        Record per-sample losses every this many epochs (epoch 0 and the last
        epoch are always recorded).
    checkpoints : tuple of int
        Epochs at which to keep a state dict (0 = initialisation; 0 and the
        last epoch are always kept).
    record_predictions : bool
        Also keep the float32 predictions ``(R, N, C)`` at every recorded epoch
        (for residual spectra over training; memory ``R * N * C * 4`` bytes).
    """

    width: int = 128
    depth: int = 2
    encoding: object = None
    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int | None = 256
    shuffle: str = "once"
    epochs: int = 500
    seed: int = 0
    record_every: int = 1
    checkpoints: tuple = ()
    record_predictions: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ``ValueError`` naming the first bad field."""
        def posint(name, v, minimum=1):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {minimum}, got {v!r}")
        posint("width", self.width)
        posint("depth", self.depth)
        posint("epochs", self.epochs, 0)
        posint("record_every", self.record_every)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"TrainConfig.seed must be an integer, got {self.seed!r}")
        enc = self.encoding
        if not (enc is None or isinstance(enc, torch.nn.Module)
                or (isinstance(enc, (int, np.integer)) and not isinstance(enc, bool) and enc >= 1)):
            raise ValueError("TrainConfig.encoding must be None (raw coordinates), an int L >= 1 "
                             f"(positional encoding) or a torch.nn.Module, got {enc!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, "
                             f"got {self.optimizer!r}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float, np.floating))
                                             and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive finite number, got {self.lr!r}")
        if self.batch_size is not None:
            posint("batch_size", self.batch_size)
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"TrainConfig.shuffle must be one of {SHUFFLES}, got {self.shuffle!r}")
        try:
            cps = tuple(sorted({int(e) for e in self.checkpoints}))
        except (TypeError, ValueError):
            raise ValueError("TrainConfig.checkpoints must be a sequence of epochs (ints), "
                             f"got {self.checkpoints!r}") from None
        bad = [e for e in cps if e < 0 or e > self.epochs]
        if bad:
            raise ValueError(f"TrainConfig.checkpoints {bad} are outside 0..epochs={self.epochs}")
        self.checkpoints = cps

    @property
    def checkpoint_epochs(self) -> tuple:
        """All epochs whose state dict is kept: the requested ones, 0 and the last."""
        return tuple(sorted(set(self.checkpoints) | {0, int(self.epochs)}))

    @property
    def record_epochs(self) -> np.ndarray:
        """Epochs at which per-sample losses are recorded."""
        e = list(range(0, int(self.epochs) + 1, int(self.record_every)))
        if e[-1] != self.epochs:
            e.append(int(self.epochs))
        return np.asarray(e, dtype=np.int64)

    def to_dict(self) -> dict:
        """Plain-dict form (``torch.save``-able with ``weights_only``), see :meth:`from_dict`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["checkpoints"] = list(self.checkpoints)
        d["encoding"] = _encoding_to_dict(self.encoding)
        return d

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        d = dict(d)
        d["encoding"] = _encoding_from_dict(d.get("encoding"))
        d["checkpoints"] = tuple(d.get("checkpoints", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# --------------------------------------------------------------------------- encoding
def positional_encoding(L, in_features):
    """The paper's positional encoding as a module:
    :class:`regions.encoding.PositionalEncoding` (``sin(2^l pi p), cos(2^l pi p)``
    for ``l = 0..L-1`` per coordinate, ordered per ``l`` as ``[sin x, cos x, sin y,
    cos y]``)."""
    return PositionalEncoding(int(L), in_features=int(in_features))


def _encoding_to_dict(enc):
    if enc is None or isinstance(enc, (int, np.integer)):
        return None if enc is None else int(enc)
    if isinstance(enc, Encoding):
        kinds, omegas = enc.feature_spec()
        return {"type": "feature_spec", "class": type(enc).__name__,
                "in_features": int(enc.in_features),
                "kinds": torch.as_tensor(kinds), "omegas": torch.as_tensor(omegas),
                "buffers": {k: v.detach().clone() for k, v in enc.named_buffers()
                            if k not in ("kinds", "omegas") and "." not in k}}
    return {"type": "module", "module": enc}


def _encoding_from_dict(d):
    if d is None or isinstance(d, (int, np.integer)):
        return d
    if isinstance(d, dict) and d.get("type") == "feature_spec":
        # the features are what count, not the subclass: a plain Encoding with them,
        # carrying the subclass's other buffers (e.g. RandomFourierFeatures.B) so that
        # the saved checkpoints' state dicts load
        enc = Encoding.from_spec(np.asarray(d["kinds"]), np.asarray(d["omegas"]))
        for name, value in (d.get("buffers") or {}).items():
            enc.register_buffer(name, torch.as_tensor(value).clone())
        return enc
    if isinstance(d, dict) and d.get("type") == "module":
        return d["module"]
    if isinstance(d, torch.nn.Module):
        return d
    raise ValueError(f"unrecognised stored encoding {d!r}")


def _encoding_module(config, in_dim):
    enc = config.encoding
    if enc is None:
        return None, in_dim
    if isinstance(enc, (int, np.integer)):
        module = positional_encoding(int(enc), in_dim)
    else:
        module = copy.deepcopy(enc)
    declared = getattr(module, "in_features", None)
    if declared is not None and int(declared) != in_dim:
        raise ValueError(f"encoding mismatch: the encoding takes {int(declared)}-dimensional "
                         f"coordinates but the signal is {in_dim}-dimensional")
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, in_dim))
    except Exception as err:  # noqa: BLE001 - any failure means it does not fit
        raise ValueError(f"encoding mismatch: the encoding module {type(module).__name__} fails "
                         f"on a ({2}, {in_dim}) batch of coordinates: {err}") from None
    if out.ndim != 2 or out.shape[0] != 2:
        raise ValueError(f"encoding mismatch: the encoding must map (B, {in_dim}) coordinates to "
                         f"(B, F) features, got output shape {tuple(out.shape)}")
    return module, int(out.shape[1])


# --------------------------------------------------------------------------- model
def build_model(config, in_dim, out_dim) -> torch.nn.Sequential:
    """The coordinate MLP of a config, initialised deterministically.

    Parameters
    ----------
    config : TrainConfig
    in_dim : int
        Coordinate dimension (1 or 2).
    out_dim : int
        Number of output channels.

    Returns
    -------
    torch.nn.Sequential
        ``[encoding,] Linear, ReLU, ..., Linear`` with ``config.depth`` hidden
        layers of ``config.width`` neurons and PyTorch's default init drawn
        under ``torch.manual_seed(config.seed)`` (the global RNG is restored).

    Examples
    --------
    >>> m = build_model(TrainConfig(width=8, depth=2), 2, 3)
    >>> [type(x).__name__ for x in m]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    in_dim, out_dim = int(in_dim), int(out_dim)
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"in_dim and out_dim must be positive, got {in_dim}, {out_dim}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.seed))
        enc, features = _encoding_module(config, in_dim)
        layers = [] if enc is None else [enc]
        n_in = features
        for _ in range(config.depth):
            layers += [torch.nn.Linear(n_in, config.width), torch.nn.ReLU()]
            n_in = config.width
        layers.append(torch.nn.Linear(n_in, out_dim))
    return torch.nn.Sequential(*layers)


