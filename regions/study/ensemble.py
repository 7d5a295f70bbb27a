"""Train many small same-shape networks in one batched step (an ensemble).

The study trains many small MLPs (seeds; raw and encoded inputs) whose hidden
and output layers have one shape. One by one, each step is a few small matrix
products and the Python and autograd overhead around them.
:func:`train_ensemble` stacks the members' parameters (``(M, out, in)``
tensors) and runs every member's step as one batched product per layer
(``torch.baddbmm``), with one optimiser over the stacked tensors. The first
layer is batched per input width (raw 2D coordinates, PE L=2, PE L=5 ...), so
members with different encodings train together without padding.

It gives the same :class:`~regions.study.run_record.Run` as
:func:`regions.study.training.train` for each member: the same initialisation
(each member's :func:`~regions.study.training_config.build_model`), the same
minibatch order per seed (:func:`~regions.study.training.batch_order`), the
same loss per member (the total is the sum of the members' mean squared
errors, so each member's gradient is its own), and Adam and SGD are
elementwise, so ``torch.optim.Adam`` over stacked tensors is Adam per member.
On this machine the records are bitwise equal (tests/test_study_ensemble.py
asserts 1e-6 of the loss scale). Members that diverge stop as in ``train``
(a ``RuntimeWarning``, later records NaN) without touching the others.

:func:`ensemble_key` says which runs may train together; the study's jobs
use it (:func:`regions.study.jobs.train_jobs`).
"""
from __future__ import annotations

import functools
import time

import torch

from .._shared import progress_bar
from .training import (TrainingRecord, batch_order, check_signal_config, encoded_inputs,
                       full_batch, make_optimizer, torch_threads)
from .training_config import build_model

__all__ = ["ensemble_key", "ensemble_size", "train_ensemble", "MAX_ENSEMBLE_ACTIVATIONS"]

#: Largest number of hidden activations (members x batch rows x width) of one
#: batched step. Measured on this machine (2 shared cores): 3 x 256 x 128
#: trains 1.3-1.8x faster batched than one by one, but 2 x 2048 x 128 (the
#: 1D full batch) and 2 x 1024 x 128 (2D full-batch GD) 0.65-0.87x: once a
#: layer's activations leave the cache, the elementwise ReLU and its gradient
#: run ~25x slower per element than on one member's tensors.
MAX_ENSEMBLE_ACTIVATIONS = 2 ** 17


def ensemble_key(signal, config):
    """What two runs must share to train in one ensemble, or ``None`` when the
    config cannot be batched (an encoding module with trainable parameters).

    The key holds the number of samples and output channels, the hidden
    shape, the optimiser and learning rate, the batching (batch size and
    shuffle mode; one value for full batch), the epochs and the record
    interval. Seeds, targets, encodings (input widths), checkpoints and
    ``record_predictions`` may differ.
    """
    config = check_signal_config(signal, config)
    enc = config.encoding
    if isinstance(enc, torch.nn.Module) and any(p.requires_grad for p in enc.parameters()):
        return None
    n = signal.n
    batching = ("full",) if full_batch(n, config) else (int(config.batch_size), config.shuffle)
    return (n, signal.channels, config.width, config.depth, config.optimizer, config.lr,
            batching, config.epochs, config.record_every)


def ensemble_size(signal, config) -> int:
    """How many runs of this shape one batched step holds
    (:data:`MAX_ENSEMBLE_ACTIVATIONS`; at least 1)."""
    rows = signal.n if full_batch(signal.n, config) else min(int(config.batch_size), signal.n)
    return max(1, MAX_ENSEMBLE_ACTIVATIONS // (rows * int(config.width)))


class _Stacked:
    """The members' Linear layers as stacked leaf tensors, members ordered by
    first-layer input width (``order[k]`` is the member at internal slot ``k``)."""

    def __init__(self, nets, feeds):
        self.linears = [[m for m in net if isinstance(m, torch.nn.Linear)] for net in nets]
        self.order = sorted(range(len(nets)), key=lambda m: feeds[m].shape[1])
        widths = [feeds[m].shape[1] for m in self.order]
        self.groups = []  # (first, stop) slots of each input width
        for k, w in enumerate(widths):
            if k == 0 or w != widths[k - 1]:
                self.groups.append([k, k + 1])
            else:
                self.groups[-1][1] = k + 1

        def leaf(tensors):
            return torch.stack([t.detach() for t in tensors]).clone().requires_grad_(True)

        self.first = [(leaf([self.linears[self.order[k]][0].weight for k in range(a, b)]),
                       leaf([self.linears[self.order[k]][0].bias for k in range(a, b)]))
                      for a, b in self.groups]
        self.rest = [(leaf([self.linears[m][i].weight for m in self.order]),
                      leaf([self.linears[m][i].bias for m in self.order]))
                     for i in range(1, len(self.linears[0]))]

    def parameters(self):
        return [t for pair in self.first + self.rest for t in pair]

    def inputs(self, rows):
        """Per first-layer group, the ``(M_g, B, F_g)`` stack of ``rows[member]``."""
        return [torch.stack([rows[self.order[k]] for k in range(a, b)]) for a, b in self.groups]

    def forward(self, xs):
        """``(M, B, C)`` outputs (internal order) of the stacked members."""
        h = torch.cat([_linear(x, W, b) for (W, b), x in zip(self.first, xs)])
        for W, b in self.rest:
            h = _linear(torch.relu(h), W, b)
        return h

    def write_back(self, slot):
        """Copy the stacked parameters of internal ``slot`` into its member's model."""
        m = self.order[slot]
        g = next(i for i, (a, b) in enumerate(self.groups) if a <= slot < b)
        pairs = [(self.first[g], slot - self.groups[g][0])] + [(p, slot) for p in self.rest]
        with torch.no_grad():
            for lin, ((W, b), k) in zip(self.linears[m], pairs):
                lin.weight.copy_(W[k])
                lin.bias.copy_(b[k])


def _linear(x, W, b):
    """``x @ W^T + b`` per member: ``(M, B, in)``, ``(M, out, in)``, ``(M, out)``,
    rounded as ``torch.nn.Linear`` rounds each member.

    One batched product when it is bitwise the per-member one for these shapes
    (:func:`_batched_is_exact`), member by member otherwise."""
    M, B, n_in = x.shape
    if M > 1 and _batched_is_exact(M, B, n_in, W.shape[1], x.requires_grad,
                                   torch.get_num_threads()):
        return torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2))
    # unbind, not x[m]: its backward is one stack, not a zero-filled copy per member
    return torch.stack([torch.nn.functional.linear(*member)
                        for member in zip(x.unbind(0), W.unbind(0), b.unbind(0))])


@functools.lru_cache(maxsize=None)
def _batched_is_exact(M, B, n_in, n_out, input_grad, threads):
    """Whether ``torch.baddbmm`` over ``M`` members gives bitwise the outputs and
    gradients of ``torch.nn.functional.linear`` per member, for a ``(B, n_in)``
    input and ``n_out`` outputs at this thread count.

    Which product kernel torch and the BLAS pick, and so the order of the
    sums, depends on the shapes, not the values (measured here: small products
    go to torch's own loop, a single output column to a matrix-vector
    product, some input widths to other kernels for the weight gradient), so
    one probe on seeded random values per shape decides.
    """
    gen = torch.Generator().manual_seed(0)
    x, W = torch.randn(M, B, n_in, generator=gen), torch.randn(M, n_out, n_in, generator=gen)
    b, g = torch.randn(M, n_out, generator=gen), torch.randn(M, B, n_out, generator=gen)

    def outputs_and_grads(fn, grad, *tensors):
        leaves = [t.clone().requires_grad_(True) for t in tensors]
        leaves[0].requires_grad_(input_grad)
        with torch.enable_grad():
            out = fn(*leaves)
            out.backward(grad)
        return [out.detach()] + [t.grad for t in leaves if t.requires_grad]

    batched = outputs_and_grads(
        lambda x, W, b: torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2)), g, x, W, b)
    for m in range(M):
        single = outputs_and_grads(torch.nn.functional.linear, g[m], x[m], W[m], b[m])
        if not all(torch.equal(a[m], c) for a, c in zip(batched, single)):
            return False
    return True


def train_ensemble(signals, configs, progress=None, threads=None) -> list:
    """Train one model per (signal, config) pair in batched steps.

    Parameters
    ----------
    signals : sequence of Signal
    configs : sequence of TrainConfig
        One per signal; all with the same :func:`ensemble_key` (not ``None``).
    progress : bool or None
        Show a tqdm bar; ``None`` shows it when stderr is a terminal.
    threads : int, optional
        Torch intra-op threads during training (restored afterwards).

    Returns
    -------
    list of Run
        In the order of the pairs, each as :func:`regions.study.training.train`
        returns it; ``seconds`` is the ensemble's loop time divided by its size.

    Examples
    --------
    >>> from regions.study.signals import sum_of_sinusoids
    >>> from regions.study.training_config import TrainConfig
    >>> sig = sum_of_sinusoids(n=32, ks=(2,))
    >>> runs = train_ensemble([sig, sig], [TrainConfig(width=8, epochs=3, seed=s)
    ...                                    for s in (0, 1)], progress=False)
    >>> [r.losses.shape for r in runs]
    [(4, 32), (4, 32)]
    """
    signals, configs = list(signals), list(configs)
    if not signals or len(signals) != len(configs):
        raise ValueError(f"train_ensemble needs one config per signal and at least one pair, "
                         f"got {len(signals)} signals and {len(configs)} configs")
    configs = [check_signal_config(s, c) for s, c in zip(signals, configs)]
    keys = [ensemble_key(s, c) for s, c in zip(signals, configs)]
    if keys[0] is None or any(k != keys[0] for k in keys):
        bad = next(i for i, k in enumerate(keys) if k is None or k != keys[0])
        raise ValueError(f"run {bad} cannot train in this ensemble: its key {keys[bad]} differs "
                         f"from run 0's {keys[0]} (see ensemble_key; None: an encoding with "
                         "trainable parameters)")
    with torch_threads(threads):
        return _train_ensemble(signals, configs, progress)


def _train_ensemble(signals, configs, progress):
    M = len(signals)
    models = [build_model(c, s.dim, s.channels) for s, c in zip(signals, configs)]
    nets, feeds = zip(*(encoded_inputs(m, s.coords) for m, s in zip(models, signals)))
    stack = _Stacked(nets, feeds)
    slot_of = {m: k for k, m in enumerate(stack.order)}
    targets = [torch.as_tensor(s.targets, dtype=torch.float32) for s in signals]
    opt = make_optimizer(configs[0], stack.parameters())
    recs = [TrainingRecord(s, c) for s, c in zip(signals, configs)]
    active = [True] * M
    frozen = {}  # member -> state dict at its divergence
    full_inputs = stack.inputs(feeds)

    def state(m):
        def snapshot():
            stack.write_back(slot_of[m])
            return {k: v.detach().clone() for k, v in models[m].state_dict().items()}
        return snapshot

    def record(epoch):
        todo = [m for m in range(M) if active[m] and recs[m].wants(epoch)]
        if todo:
            with torch.no_grad():
                out = stack.forward(full_inputs)
            for m in todo:
                recs[m].record(epoch, out[slot_of[m]], state(m))

    def batch(indices):
        if all(i is None for i in indices):
            return full_inputs, torch.stack([targets[m] for m in stack.order])
        xs = stack.inputs([f[i] for f, i in zip(feeds, indices)])
        return xs, torch.stack([targets[m][indices[m]] for m in stack.order])

    record(0)
    orders = [batch_order(s.n, c) for s, c in zip(signals, configs)]
    fixed = configs[0].shuffle != "every" or full_batch(signals[0].n, configs[0])
    cached = None
    bar = progress_bar(progress, total=configs[0].epochs, desc=f"train ensemble of {M}",
                       leave=False)
    t0 = time.perf_counter()
    try:
        for epoch in range(1, configs[0].epochs + 1):
            per_member = [next(o) for o in orders]
            if cached is None or not fixed:
                cached = [batch([p[j] for p in per_member]) for j in range(len(per_member[0]))]
            for xs, ys in cached:
                opt.zero_grad(set_to_none=True)
                losses = ((stack.forward(xs) - ys) ** 2).mean(dim=(1, 2))
                losses.sum().backward()
                opt.step()
            for m in range(M):
                loss = losses[slot_of[m]]
                if active[m] and not torch.isfinite(loss):
                    recs[m].stop(epoch, loss.item(), state(m))
                    frozen[m] = state(m)()
                    active[m] = False
            if not any(active):
                break
            record(epoch)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = (time.perf_counter() - t0) / M
    runs = []
    for m in range(M):
        if m in frozen:
            models[m].load_state_dict(frozen[m])
        else:
            stack.write_back(slot_of[m])
        runs.append(recs[m].run(models[m], seconds))
    return runs
