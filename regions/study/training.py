"""Train coordinate MLPs with a per-sample loss record and checkpoints.

:func:`train` fits the model of a
:class:`~regions.study.training_config.TrainConfig` to a
:class:`~regions.study.signals.Signal` in float32 and records every sample's
loss (squared error averaged over channels) at epoch 0 and every
``record_every`` epochs; the result is a
:class:`~regions.study.run_record.Run`.

Determinism: the model is initialised under ``torch.manual_seed(seed)``
(:func:`~regions.study.training_config.build_model`) and the batch order comes
from a ``torch.Generator`` seeded with ``seed`` (:func:`batch_order`); two runs
with the same config are identical on the same machine and thread count.

The pieces of the loop (:func:`batch_order`, :func:`encoded_inputs`,
:func:`make_optimizer`, :class:`TrainingRecord`, :func:`torch_threads`) are
shared with :mod:`regions.study.ensemble`, which trains many same-shape
networks in one batched step and gives the same Runs.
:func:`sharpness` measures the top eigenvalue of the training loss's Hessian
(how the default full-batch GD learning rate was chosen, see
:data:`regions.study.training_config.DEFAULT_LR`).
"""
from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np
import torch

from .._shared import progress_bar
from .run_record import Run
from .signals import Signal
from .training_config import TrainConfig, build_model

__all__ = ["train", "check_signal_config", "full_batch", "batch_order", "encoded_inputs",
           "make_optimizer", "TrainingRecord", "torch_threads", "sharpness"]


# --------------------------------------------------------------------------- pieces
def full_batch(n, config) -> bool:
    """Whether every step of ``config`` on ``n`` samples uses all of them."""
    return config.optimizer == "gd" or config.batch_size is None or config.batch_size >= n


def batch_order(n, config):
    """Yield, per epoch, the list of index tensors of its batches.

    ``None`` stands for the whole set in grid order (full batch: ``"gd"``,
    ``batch_size`` ``None`` or ``>= n``). The order comes from a
    ``torch.Generator`` seeded with ``config.seed``: ``"once"`` draws one
    permutation and replays it, ``"every"`` draws one per epoch, ``"none"``
    keeps grid order. With a fixed order every epoch yields the same list
    object.
    """
    full = full_batch(n, config)
    gen = torch.Generator().manual_seed(int(config.seed))
    bs = n if full else int(config.batch_size)

    def split(order):
        return [order[i:i + bs] for i in range(0, n, bs)]

    if config.shuffle == "every" and not full:
        while True:
            yield split(torch.randperm(n, generator=gen))
    order = torch.randperm(n, generator=gen) if config.shuffle == "once" else torch.arange(n)
    fixed = [None] if full else split(order)
    while True:
        yield fixed


def encoded_inputs(model, coords):
    """``(net, feed)``: the part of ``model`` that is trained and its input.

    With an encoding without trainable parameters in front, the encoded grid
    is computed once (``feed``) and ``net`` is the rest of the Sequential;
    otherwise ``net`` is the model and ``feed`` the float32 coordinates.
    """
    X = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
    first = model[0]
    if not isinstance(first, torch.nn.Linear) and not any(
            p.requires_grad for p in first.parameters()):
        with torch.no_grad():
            return model[1:], first(X).detach()
    return model, X


def make_optimizer(config, params):
    """The optimiser of a config over ``params``: ``torch.optim.Adam`` (default
    betas and eps) for ``"adam"``, plain ``torch.optim.SGD`` (no momentum) for
    ``"sgd"`` and for full-batch ``"gd"``, at ``config.lr``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr)


@contextlib.contextmanager
def torch_threads(threads):
    """Run the block with ``threads`` torch intra-op threads (``None``: as is)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TrainingRecord:
    """What one run records while it trains: per-sample losses (and
    predictions) at the record epochs, state dicts at the checkpoint epochs.

    Parameters
    ----------
    signal : Signal
    config : TrainConfig
    """

    def __init__(self, signal, config):
        self.signal, self.config = signal, config
        self.epochs = config.record_epochs
        self.row = {int(e): i for i, e in enumerate(self.epochs)}
        self.keep = set(config.checkpoint_epochs)
        self.targets = torch.as_tensor(signal.targets, dtype=torch.float32)
        self.losses = np.full((len(self.epochs), signal.n), np.nan)
        self.predictions = (np.full((len(self.epochs), signal.n, signal.channels), np.nan,
                                    dtype=np.float32) if config.record_predictions else None)
        self.checkpoints = {}
        self.diverged = False

    def wants(self, epoch):
        """Whether ``epoch`` is recorded or kept (so the caller computes the outputs)."""
        return epoch in self.row or epoch in self.keep

    def record(self, epoch, outputs, state):
        """Record the ``(N, C)`` float32 outputs on the whole grid at ``epoch`` and keep
        ``state()`` (a state dict) when it is a checkpoint epoch."""
        if epoch in self.row:
            per_sample = ((outputs - self.targets) ** 2).mean(dim=1)
            self.losses[self.row[epoch]] = per_sample.double().numpy()
            if self.predictions is not None:
                self.predictions[self.row[epoch]] = outputs.numpy()
        if epoch in self.keep:
            self.checkpoints[epoch] = state()

    def stop(self, epoch, loss, state, stacklevel=3):
        """After a non-finite training loss at ``epoch``: warn, keep ``state()`` as the
        last checkpoint (so the Run stays usable); later records stay NaN."""
        warnings.warn(f"training loss became {loss} at epoch {epoch} (lr={self.config.lr}); "
                      "stopping, later records are NaN", RuntimeWarning, stacklevel=stacklevel)
        self.diverged = True
        self.checkpoints.setdefault(self.config.epochs, state())

    def mean_at(self, epoch):
        """Mean recorded loss at a record epoch."""
        return self.losses[self.row[epoch]].mean()

    def run(self, model, seconds) -> Run:
        """The :class:`Run` of this record with the final ``model``."""
        model.eval()
        return Run(config=self.config, signal=self.signal, record_epochs=self.epochs,
                   losses=self.losses, checkpoints=self.checkpoints, model=model,
                   predictions=self.predictions, seconds=seconds)


def _state_of(model):
    return lambda: {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_signal_config(signal, config):
    """The config to train (``TrainConfig()`` for ``None``), validated; ``ValueError``
    when the signal or the config is not one."""
    if not isinstance(signal, Signal):
        raise ValueError(f"signal must be a regions.study.signals.Signal (see sum_of_sinusoids, "
                         f"random_image, image_file, from_array), got {type(signal).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    return config


# --------------------------------------------------------------------------- training
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
    config = check_signal_config(signal, config)
    with torch_threads(threads):
        return _train(signal, config, progress)


def _train(signal, config, progress):
    model = build_model(config, signal.dim, signal.channels)
    net, feed = encoded_inputs(model, signal.coords)
    Y = torch.as_tensor(signal.targets, dtype=torch.float32)
    opt = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    rec = TrainingRecord(signal, config)
    state = _state_of(model)

    def record(epoch):
        if rec.wants(epoch):
            with torch.no_grad():
                rec.record(epoch, net(feed), state)

    record(0)
    batches = batch_order(signal.n, config)
    bar = progress_bar(progress, total=config.epochs, desc=f"train {signal.name}", leave=False)
    t0 = time.perf_counter()
    try:
        for epoch in range(1, config.epochs + 1):
            for idx in next(batches):
                xb, yb = (feed, Y) if idx is None else (feed[idx], Y[idx])
                opt.zero_grad(set_to_none=True)
                loss = ((net(xb) - yb) ** 2).mean()
                loss.backward()
                opt.step()
            if not torch.isfinite(loss):
                rec.stop(epoch, loss.item(), state)
                break
            record(epoch)
            if bar is not None:
                bar.update(1)
                if epoch in rec.row:
                    bar.set_postfix(loss=f"{rec.mean_at(epoch):.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return rec.run(model, time.perf_counter() - t0)


def sharpness(model, coords, targets, iterations=100, seed=0) -> float:
    """The largest eigenvalue of the Hessian of the training loss (full-batch mean
    squared error over samples and channels) with respect to the trainable
    parameters, by power iteration on Hessian-vector products (float32).

    Full-batch gradient descent on this loss is stable near the parameters
    only for ``lr < 2 / sharpness``. Returns the Rayleigh quotient after
    ``iterations`` steps from a seeded random start (the eigenvalue of
    largest magnitude; for these losses at initialisation it is positive).

    Examples
    --------
    A linear model ``y = w x`` has loss ``mean((w x - t)^2)``, Hessian ``2 mean(x^2)``:

    >>> m = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False))
    >>> x = np.array([[1.0], [2.0], [3.0]])
    >>> round(sharpness(m, x, np.zeros((3, 1)), iterations=5), 4)
    9.3333
    """
    X = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
    Y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    loss = ((model(X) - Y) ** 2).mean()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(int(seed))
    v = [torch.randn(p.shape, generator=gen) for p in params]
    value = float("nan")
    for _ in range(int(iterations)):
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        value = float(sum((a * b).sum() for a, b in zip(hv, v)))
        v = [h.detach() for h in hv]
    return value
