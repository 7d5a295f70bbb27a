"""Patterns and outputs of a torch ``Sequential`` by torch itself, and 1D
breakpoints of any pattern function by sampling and bisection: the oracles the
engine tests compare with (no code of ``regions`` is used)."""
import numpy as np
import torch


def torch_patterns_and_output(model, x):
    """Activation pattern (z > 0 of every Linear followed by an activation) and output, by torch."""
    h = torch.as_tensor(np.asarray(x, dtype=np.float64))
    mods = list(model)
    bits = []
    with torch.no_grad():
        for i, m in enumerate(mods):
            h = m(h)
            if isinstance(m, torch.nn.Linear) and i + 1 < len(mods) and isinstance(
                    mods[i + 1], (torch.nn.ReLU, torch.nn.LeakyReLU)):
                bits.append((h > 0).numpy())
    return np.concatenate(bits, axis=1), h.numpy()


def bisect_breakpoints(pattern_fn, u, steps=60):
    """Breakpoints where the pattern ``pattern_fn(u)`` changes between the sorted
    samples ``u`` (1D), each refined by ``steps`` bisections between the two
    samples around it; returns ``(breakpoints, patterns at u)``. A breakpoint
    between two samples with the same pattern (an even number of changes) is
    missed: sample densely."""
    pats = pattern_fn(u)
    change = np.flatnonzero(np.any(pats[1:] != pats[:-1], axis=1))
    a, b = u[change].copy(), u[change + 1].copy()
    pa = pats[change]
    for _ in range(steps):
        m = 0.5 * (a + b)
        same = np.all(pattern_fn(m) == pa, axis=1)
        a = np.where(same, m, a)
        b = np.where(same, b, m)
    return 0.5 * (a + b), pats
