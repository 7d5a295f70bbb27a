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
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .._shared import progress_bar
from .run_record import Run
from .signals import Signal
from .training_config import TrainConfig, build_model

__all__ = ["train"]


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
