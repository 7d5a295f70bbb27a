"""Render docs/partition.png, the README's picture (run from the repository root).

An exact partition of a He-initialised 2-64x3-1 ReLU network on [-3, 3]^2,
each region filled with the colour of its activation pattern, and the
decision boundary (output = 0) in black.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import torch

import regions
import regions.plot


def he_network(widths, seed):
    """W ~ N(0, 2 / fan_in), b ~ N(0, 0.1^2) (the benchmark's initialisation)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = torch.nn.Linear(a, b)
        with torch.no_grad():
            linear.weight.normal_(0.0, (2.0 / a) ** 0.5, generator=g)
            linear.bias.normal_(0.0, 0.1, generator=g)
        layers += [linear, torch.nn.ReLU()] if i < len(widths) - 2 else [linear]
    return torch.nn.Sequential(*layers)


def main(path="docs/partition.png", seed=3):
    net = he_network([2, 64, 64, 64, 1], seed)
    p = regions.partition(net, ((-3, 3), (-3, 3)))
    ax = regions.plot.partition(p, level_set=0.0, title=False)
    ax.set_title(f"{len(p):,} exact linear regions of a 2-64x3-1 ReLU network\n"
                 "(He init, $[-3,3]^2$); black: the decision boundary", fontsize="medium")
    ax.figure.savefig(path, dpi=150)
    return path


if __name__ == "__main__":
    main(*sys.argv[1:2], *(int(s) for s in sys.argv[2:3]))
