"""Patterns and outputs of a torch ``Sequential`` by torch itself: the oracle the
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
