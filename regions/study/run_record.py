"""The record of one training run: per-sample losses, checkpoints, the model.

A :class:`Run` holds plain arrays (the per-sample losses at every recorded
epoch, optionally the predictions) and the state dicts at the kept epochs,
checked on construction against the model its config builds
(:func:`~regions.study.training_config.build_model`); :func:`sample_losses`
is the per-sample loss it records (squared error averaged over channels,
float32 forward). A run saves to and loads from a plain dict of tensors
(``torch.save`` / ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .signals import Signal
from .training_config import TrainConfig, build_model

__all__ = ["Run", "sample_losses"]


def sample_losses(model, coords, targets) -> np.ndarray:
    """Per-sample loss (squared error averaged over channels), float32 forward.

    Returns a float64 ``(N,)`` array.
    """
    x = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    with torch.no_grad():
        return ((model(x) - y) ** 2).mean(dim=1).double().numpy()


def _checked_arrays(record_epochs, losses, predictions, signal):
    """The record's arrays as int64 / float64 / as given, their shapes checked."""
    record_epochs = np.asarray(record_epochs, dtype=np.int64)
    losses = np.asarray(losses, dtype=np.float64)
    R = record_epochs.shape[0]
    if losses.shape != (R, signal.n):
        raise ValueError(f"Run.losses must have shape (R, N) = ({R}, {signal.n}), "
                         f"got {losses.shape}")
    if predictions is not None:
        predictions = np.asarray(predictions)
        want = (R, signal.n, signal.channels)
        if predictions.shape != want:
            raise ValueError(f"Run.predictions must have shape {want}, "
                             f"got {predictions.shape}")
    return record_epochs, losses, predictions


def _checked_checkpoints(checkpoints, config, signal):
    """``{epoch: state_dict}`` sorted by epoch, each checked against the config's model."""
    if not checkpoints:
        raise ValueError("Run.checkpoints is empty; at least the last epoch is needed")
    checkpoints = {int(e): sd for e, sd in sorted(checkpoints.items())}
    ref = build_model(config, signal.dim, signal.channels).state_dict()
    for e, sd in checkpoints.items():
        if not isinstance(sd, dict):
            raise ValueError(f"checkpoint at epoch {e} must be a state_dict (a dict of "
                             f"tensors), got {type(sd).__name__}")
        _check_state_dict(ref, config, signal, sd, f"checkpoint at epoch {e}")
    return checkpoints


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
        Wall time of the training loop (a member of a batched ensemble,
        :mod:`regions.study.ensemble`: the ensemble's loop time divided by
        its number of members).
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
        self.record_epochs, self.losses, self.predictions = _checked_arrays(
            self.record_epochs, self.losses, self.predictions, self.signal)
        self.checkpoints = _checked_checkpoints(self.checkpoints, self.config, self.signal)
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
        """Plain-dict form of tensors (what :meth:`save` writes)."""
        return _run_to_dict(self)

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
        return _run_from_dict(_read_saved(path, trusted))

    def __repr__(self):
        return (f"Run(signal={self.signal.name!r}, epochs={self.epochs}, "
                f"recorded={len(self.record_epochs)}, checkpoints={self.checkpoint_epochs}, "
                f"final mean loss={self.mean_loss[-1]:.4g})")


def _read_saved(path, trusted):
    """The dict a :meth:`Run.save` wrote, read with ``weights_only`` unless trusted."""
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
    return d


def _run_to_dict(run) -> dict:
    """The plain dict of tensors of :meth:`Run.to_dict`."""
    s = run.signal
    return {
        "format": "regions.study.Run", "version": 1,
        "config": run.config.to_dict(),
        "signal": {"name": s.name, "coords": torch.as_tensor(s.coords),
                   "targets": torch.as_tensor(s.targets),
                   "grid_shape": list(s.grid_shape), "coord_range": list(s.coord_range),
                   "endpoint": bool(s.endpoint)},
        "record_epochs": torch.as_tensor(run.record_epochs),
        "losses": torch.as_tensor(run.losses),
        "checkpoints": {int(e): dict(sd) for e, sd in run.checkpoints.items()},
        "predictions": None if run.predictions is None else torch.as_tensor(run.predictions),
        "seconds": float(run.seconds),
    }


def _run_from_dict(d) -> Run:
    """The :class:`Run` of a dict written by :meth:`Run.to_dict`."""
    sd = d["signal"]
    signal = Signal(name=sd["name"], coords=sd["coords"].numpy(),
                    targets=sd["targets"].numpy(), grid_shape=tuple(sd["grid_shape"]),
                    coord_range=tuple(sd["coord_range"]),
                    endpoint=bool(sd.get("endpoint", False)))
    preds = d.get("predictions")
    return Run(config=TrainConfig.from_dict(d["config"]), signal=signal,
               record_epochs=d["record_epochs"].numpy(), losses=d["losses"].numpy(),
               checkpoints=d["checkpoints"],
               predictions=None if preds is None else preds.numpy(),
               seconds=float(d.get("seconds", float("nan"))))
