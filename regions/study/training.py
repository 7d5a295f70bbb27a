"""Train coordinate MLPs with a per-sample loss record and checkpoints.

:func:`train` fits a ``torch.nn.Sequential`` of ``[encoding?] Linear, ReLU,
..., Linear`` (PyTorch default init) to a :class:`~regions.study.signals.Signal`
in float32, and records every sample's loss (squared error averaged over
channels) at epoch 0 and every ``record_every`` epochs. The result is a
:class:`Run`: plain arrays plus state dicts at chosen epochs.

Determinism: the model is initialised under ``torch.manual_seed(seed)``
(inside a forked RNG, so the caller's global torch RNG is untouched) and the
batch order comes from a ``torch.Generator`` seeded with ``seed``; two runs
with the same config are identical on the same machine and thread count.

Size: about 600 lines, kept as one module on purpose for now: the
configuration, the model it builds, the :class:`Run` record and the loop
share one checkpoint contract (a saved Run is reloaded by rebuilding the
config's model and checking every checkpoint against it). The optimiser
variants of the coupling issue (full-batch GD beside Adam) are the point to
split the loop from the record.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .._shared import progress_bar
from ..encoding import Encoding, PositionalEncoding
from .signals import Signal

__all__ = ["TrainConfig", "Run", "build_model", "train", "sample_losses",
           "positional_encoding"]

OPTIMIZERS = ("adam", "sgd", "gd")
SHUFFLES = ("once", "every", "none")


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
    lr : float
        Learning rate.
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
    lr: float = 1e-3
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
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
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


def sample_losses(model, coords, targets) -> np.ndarray:
    """Per-sample loss (squared error averaged over channels), float32 forward.

    Returns a float64 ``(N,)`` array.
    """
    x = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    with torch.no_grad():
        return ((model(x) - y) ** 2).mean(dim=1).double().numpy()


def _check_state_dict(ref, config, signal, state, where):
    missing = sorted(set(ref) - set(state))
    extra = sorted(set(state) - set(ref))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(ref[k].shape)}"
              for k in ref if k in state and tuple(state[k].shape) != tuple(ref[k].shape)]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if extra:
            parts.append(f"unexpected keys {extra}")
        if shapes:
            parts.append("shape mismatches (checkpoint vs model) " + "; ".join(shapes))
        raise ValueError(f"{where} does not match the model of the config (width={config.width}, "
                         f"depth={config.depth}, encoding={config.encoding!r}, "
                         f"in={signal.dim}, out={signal.channels}): " + ", ".join(parts))


# --------------------------------------------------------------------------- run
@dataclass
class Run:
    """The record of one training run.

    Attributes
    ----------
    config : TrainConfig
    signal : Signal
    record_epochs : ndarray
        ``(R,)`` int64 epochs at which losses were recorded (starts at 0).
    losses : ndarray
        ``(R, N)`` float64 per-sample losses (squared error averaged over
        channels, evaluated in float32 with the whole grid).
    checkpoints : dict
        ``{epoch: state_dict}``; always holds 0 and the last epoch.
    model : torch.nn.Sequential
        The final model (rebuilt from the last checkpoint when omitted).
    predictions : ndarray or None
        ``(R, N, C)`` float32 predictions at the recorded epochs when the
        config asked for them.
    seconds : float
        Wall time of the training loop.
    """

    config: TrainConfig
    signal: Signal
    record_epochs: np.ndarray
    losses: np.ndarray
    checkpoints: dict
    model: torch.nn.Module = None
    predictions: np.ndarray = None
    seconds: float = float("nan")

    def __post_init__(self):
        self.record_epochs = np.asarray(self.record_epochs, dtype=np.int64)
        self.losses = np.asarray(self.losses, dtype=np.float64)
        R = self.record_epochs.shape[0]
        if self.losses.shape != (R, self.signal.n):
            raise ValueError(f"Run.losses must have shape (R, N) = ({R}, {self.signal.n}), "
                             f"got {self.losses.shape}")
        if self.predictions is not None:
            self.predictions = np.asarray(self.predictions)
            want = (R, self.signal.n, self.signal.channels)
            if self.predictions.shape != want:
                raise ValueError(f"Run.predictions must have shape {want}, "
                                 f"got {self.predictions.shape}")
        if not self.checkpoints:
            raise ValueError("Run.checkpoints is empty; at least the last epoch is needed")
        self.checkpoints = {int(e): sd for e, sd in sorted(self.checkpoints.items())}
        ref = build_model(self.config, self.signal.dim, self.signal.channels).state_dict()
        for e, sd in self.checkpoints.items():
            if not isinstance(sd, dict):
                raise ValueError(f"checkpoint at epoch {e} must be a state_dict (a dict of "
                                 f"tensors), got {type(sd).__name__}")
            _check_state_dict(ref, self.config, self.signal, sd, f"checkpoint at epoch {e}")
        if self.model is None:
            self.model = self.model_at(max(self.checkpoints))

    @property
    def epochs(self) -> int:
        return int(self.config.epochs)

    @property
    def checkpoint_epochs(self) -> list:
        """Sorted epochs with a kept state dict."""
        return sorted(self.checkpoints)

    @property
    def mean_loss(self) -> np.ndarray:
        """``(R,)`` mean loss over samples at each recorded epoch."""
        return self.losses.mean(axis=1)

    def model_at(self, epoch) -> torch.nn.Sequential:
        """The model at a checkpoint epoch (a fresh module; float32).

        Raises
        ------
        ValueError
            If ``epoch`` has no checkpoint; the message lists those available.
        """
        try:
            e = int(epoch)
        except (TypeError, ValueError):
            e = None
        if e is None or e not in self.checkpoints:
            raise ValueError(f"no checkpoint at epoch {epoch!r}; available epochs: "
                             f"{self.checkpoint_epochs}")
        model = build_model(self.config, self.signal.dim, self.signal.channels)
        model.load_state_dict(self.checkpoints[e])
        model.eval()
        return model

    def predictions_at(self, epoch) -> np.ndarray:
        """``(N, C)`` float64 predictions of the checkpoint at ``epoch`` on the grid."""
        x = torch.as_tensor(self.signal.coords, dtype=torch.float32)
        with torch.no_grad():
            return self.model_at(epoch)(x).double().numpy()

    def losses_at(self, epoch) -> np.ndarray:
        """``(N,)`` recorded per-sample losses at a recorded epoch."""
        idx = np.flatnonzero(self.record_epochs == int(epoch))
        if idx.size == 0:
            raise ValueError(f"epoch {epoch!r} was not recorded; recorded epochs are 0.."
                             f"{self.epochs} every {self.config.record_every} (and the last)")
        return self.losses[idx[0]]

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        s = self.signal
        return {
            "format": "regions.study.Run", "version": 1,
            "config": self.config.to_dict(),
            "signal": {"name": s.name, "coords": torch.as_tensor(s.coords),
                       "targets": torch.as_tensor(s.targets),
                       "grid_shape": list(s.grid_shape), "coord_range": list(s.coord_range),
                       "endpoint": bool(s.endpoint)},
            "record_epochs": torch.as_tensor(self.record_epochs),
            "losses": torch.as_tensor(self.losses),
            "checkpoints": {int(e): dict(sd) for e, sd in self.checkpoints.items()},
            "predictions": None if self.predictions is None else torch.as_tensor(self.predictions),
            "seconds": float(self.seconds),
        }

    def save(self, path):
        """Save as a plain dict of tensors with ``torch.save``.

        A run whose encoding is a custom module (not a
        :class:`regions.encoding.Encoding`) stores the pickled module; such a
        file loads only with ``Run.load(path, trusted=True)``.
        """
        torch.save(self.to_dict(), path)

    @classmethod
    def load(cls, path, trusted=False) -> "Run":
        """Load a run saved by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        trusted : bool
            Allow unpickling arbitrary objects (needed only for custom encoding
            modules). Never set it for files from untrusted sources.
        """
        try:
            d = torch.load(path, weights_only=not trusted)
        except Exception as err:  # noqa: BLE001
            if not trusted and "weights_only" in str(err):
                raise ValueError(f"{str(path)!r} holds objects beyond tensors (a custom encoding "
                                 "module); if you trust the file, load it with "
                                 "Run.load(path, trusted=True)") from None
            raise
        if not isinstance(d, dict) or d.get("format") != "regions.study.Run":
            raise ValueError(f"{str(path)!r} is not a saved regions.study.Run")
        sd = d["signal"]
        signal = Signal(name=sd["name"], coords=sd["coords"].numpy(),
                        targets=sd["targets"].numpy(), grid_shape=tuple(sd["grid_shape"]),
                        coord_range=tuple(sd["coord_range"]),
                        endpoint=bool(sd.get("endpoint", False)))
        preds = d.get("predictions")
        return cls(config=TrainConfig.from_dict(d["config"]), signal=signal,
                   record_epochs=d["record_epochs"].numpy(), losses=d["losses"].numpy(),
                   checkpoints=d["checkpoints"],
                   predictions=None if preds is None else preds.numpy(),
                   seconds=float(d.get("seconds", float("nan"))))

    def __repr__(self):
        return (f"Run(signal={self.signal.name!r}, epochs={self.epochs}, "
                f"recorded={len(self.record_epochs)}, checkpoints={self.checkpoint_epochs}, "
                f"final mean loss={self.mean_loss[-1]:.4g})")


# --------------------------------------------------------------------------- training
def _batches(n, config):
    """Yield, per epoch, the list of index tensors of its batches."""
    full = config.optimizer == "gd" or config.batch_size is None or config.batch_size >= n
    gen = torch.Generator().manual_seed(int(config.seed))
    bs = n if full else int(config.batch_size)

    def split(order):
        return [order[i:i + bs] for i in range(0, n, bs)]

    if config.shuffle == "every" and not full:
        while True:
            yield split(torch.randperm(n, generator=gen))
    order = torch.randperm(n, generator=gen) if config.shuffle == "once" else torch.arange(n)
    fixed = [None] if full else split(order)  # None = the whole set, in grid order
    while True:
        yield fixed


def train(signal, config=None, progress=None, threads=None) -> Run:
    """Train a coordinate MLP on a signal, recording per-sample losses.

    Parameters
    ----------
    signal : Signal
        The targets on a grid.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    progress : bool or None
        Show a tqdm bar; ``None`` shows it when stderr is a terminal.
    threads : int, optional
        Torch intra-op threads during training (restored afterwards). These
        nets are small: one thread is usually fastest, and much faster than
        two on a loaded machine; ``None`` leaves torch's setting alone.

    Returns
    -------
    Run

    Notes
    -----
    The training loss is the mean squared error over the batch and channels.
    With an encoding without trainable parameters the encoded grid is
    computed once; the model is unchanged. A non-finite loss stops training
    with a ``RuntimeWarning``; the remaining records are NaN.

    Examples
    --------
    >>> from regions.study.signals import sum_of_sinusoids
    >>> run = train(sum_of_sinusoids(n=32, ks=(2,)),
    ...             TrainConfig(width=8, epochs=3, optimizer="gd", lr=1e-2), progress=False)
    >>> run.losses.shape, run.checkpoint_epochs
    ((4, 32), [0, 3])
    """
    if not isinstance(signal, Signal):
        raise ValueError(f"signal must be a regions.study.signals.Signal (see sum_of_sinusoids, "
                         f"random_image, image_file, from_array), got {type(signal).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    if threads is None:
        return _train(signal, config, progress)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _train(signal, config, progress)
    finally:
        torch.set_num_threads(before)


def _train(signal, config, progress):
    model = build_model(config, signal.dim, signal.channels)

    X = torch.as_tensor(signal.coords, dtype=torch.float32)
    Y = torch.as_tensor(signal.targets, dtype=torch.float32)
    net, feed = model, X
    first = model[0]
    if not isinstance(first, torch.nn.Linear) and not any(
            p.requires_grad for p in first.parameters()):
        with torch.no_grad():
            feed = first(X).detach()
        net = model[1:]

    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr)
    else:
        opt = torch.optim.SGD(params, lr=config.lr)

    rec_epochs = config.record_epochs
    rec_set = {int(e): i for i, e in enumerate(rec_epochs)}
    keep = set(config.checkpoint_epochs)
    losses = np.full((len(rec_epochs), signal.n), np.nan)
    preds = (np.full((len(rec_epochs), signal.n, signal.channels), np.nan, dtype=np.float32)
             if config.record_predictions else None)
    checkpoints = {}

    def record(epoch):
        if epoch in rec_set:
            with torch.no_grad():
                out = net(feed)
                losses[rec_set[epoch]] = ((out - Y) ** 2).mean(dim=1).double().numpy()
                if preds is not None:
                    preds[rec_set[epoch]] = out.numpy()
        if epoch in keep:
            checkpoints[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    record(0)
    batches = _batches(signal.n, config)
    bar = progress_bar(progress, total=config.epochs, desc=f"train {signal.name}", leave=False)
    t0 = time.perf_counter()
    diverged = False
    try:
        for epoch in range(1, config.epochs + 1):
            for idx in next(batches):
                xb, yb = (feed, Y) if idx is None else (feed[idx], Y[idx])
                opt.zero_grad(set_to_none=True)
                loss = ((net(xb) - yb) ** 2).mean()
                loss.backward()
                opt.step()
            if not torch.isfinite(loss):
                warnings.warn(f"training loss became {loss.item()} at epoch {epoch} "
                              f"(lr={config.lr}); stopping, later records are NaN",
                              RuntimeWarning, stacklevel=2)
                diverged = True
                break
            record(epoch)
            if bar is not None:
                bar.update(1)
                if epoch in rec_set:
                    bar.set_postfix(loss=f"{losses[rec_set[epoch]].mean():.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if diverged:  # keep the last state so the Run stays usable
        checkpoints.setdefault(config.epochs,
                               {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    return Run(config=config, signal=signal, record_epochs=rec_epochs, losses=losses,
               checkpoints=checkpoints, model=model, predictions=preds, seconds=seconds)
