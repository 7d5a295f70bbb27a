"""Render docs/pe2d.png, the README's picture of curved regions (run from the
repository root).

The exact regions of a 2 -> PE(L=2) -> 32 -> 32 -> 1 coordinate network on the
unit square (PyTorch's default initialisation, seed 0), each face filled with
the colour of its activation pattern; boundaries within 1e-5 of the true
curves (``regions.encoded.partition_encoded_plane``).
"""
import sys

import matplotlib

matplotlib.use("Agg")
import torch

import regions
import regions.plot


def main(path="docs/pe2d.png", seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(regions.PositionalEncoding(2, in_features=2), torch.nn.Linear(8, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 1)).double()
    p = regions.partition(net, ((0, 1), (0, 1)))
    ax = regions.plot.partition(p, title=False)
    ax.set_title(f"{len(p):,} exact curved regions of 2 -> PE(L=2) -> 32x2 -> 1\n"
                 f"(PyTorch init; boundaries within {p.tol:g} of the true curves)",
                 fontsize="medium")
    ax.figure.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
