"""Fingerprints of the 2D engine's, the encoded 1D engine's and the encoded 2D
engine's output on fixed networks, to show that a change of the kernels leaves
every array bit-identical.

    python benchmarks/kernel_hashes.py            # prints one line per case
    python benchmarks/kernel_hashes.py --check    # compares with kernel_hashes.json

Each line is the SHA-256 of the raw bytes (with dtype and shape) of the arrays
``vertices, face_offsets, face_vertices, packed_patterns, A, c`` of
``regions.partition`` on one case (encoded 1D cases: ``points, packed_patterns,
A, c`` and the level set of the output at its median on a grid, which runs the
``carry`` walk of ``kernels.trig.isolate_pieces``; encoded 2D cases: the faces'
WKB, ``packed_patterns``, ``A``, ``c`` and every entry of ``stats`` but the
engine's name, crossings certificate included). ``--write`` stores the
current ones, with the CPU they were made on.

The hashes are bitwise, so they hold for one machine: the first layer's
products go through BLAS, whose kernels differ by CPU (the hashes of 2026-12-02,
AMD EPYC, differ on an Intel Xeon at the same commit). On another CPU, ``--check``
says so; write the base commit's hashes there first (``git stash``, ``--write``,
``git stash pop``, ``--check``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import regions  # noqa: E402
from regions._shared import cpu_model  # noqa: E402
from regions.cli import he_network  # noqa: E402
from regions.network import Network  # noqa: E402

FIELDS = ("vertices", "face_offsets", "face_vertices", "packed_patterns", "A", "c")
FIELDS_1D = ("points", "packed_patterns", "A", "c")
BOX3 = ((-3.0, 3.0), (-3.0, 3.0))


def _network(pairs, slopes=None):
    slopes = np.zeros(len(pairs) - 1) if slopes is None else np.asarray(slopes, float)
    return Network([W for W, _ in pairs], [b for _, b in pairs], slopes, None, [])


def cases():
    """(name, network, domain) of every fingerprinted case."""
    import shapely

    out = [("he:2-32x3-1 [-3,3]^2", _network(he_network("2-32x3-1", 0)), BOX3),
           ("he:2-64x4-1 [-3,3]^2", _network(he_network("2-64x4-1", 0)), BOX3),
           ("he:2-128x4-1 [-3,3]^2", _network(he_network("2-128x4-1", 0)), BOX3),
           ("leaky 2-24x3-1 slope 0.1", _network(he_network("2-24x3-1", 1), [0.1, 0.1, 0.1]), BOX3)]
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 5))
    out.append(("plane slice 5-16x3-2", _network(he_network("5-16x3-2", 2)),
                regions.Plane(points=(a, b, c), box=((-1, 2), (-1, 2)))))
    L = shapely.Polygon([(-2, -2), (2, -2), (2, 0), (0, 0), (0, 2), (-2, 2)])
    out.append(("non-convex L 2-16x2-1", _network(he_network("2-16x2-1", 3)), L))
    rng = np.random.default_rng(7)
    sizes = [2, 6, 6, 5, 1]
    ints = [(rng.integers(-2, 3, (m, k)).astype(float), rng.integers(-2, 3, m).astype(float))
            for k, m in zip(sizes[:-1], sizes[1:])]
    out.append(("integer 2-6-6-5-1 [-2,2]^2", _network(ints), ((-2.0, 2.0), (-2.0, 2.0))))
    return out + encoded_cases() + encoded_2d_cases()


def encoded_2d_cases():
    """(name, torch model, box) of the encoded 2D cases: two hidden layers at PE L=2 and
    L=5 (the second the paper's network on a corner of the square, where its faces
    are as small as in the whole partition), and three hidden layers."""
    import torch

    def mlp(L, widths, n_out, seed):
        torch.manual_seed(seed)
        mods, n = [regions.PositionalEncoding(L, in_features=2)], 4 * L
        for w in widths:
            mods += [torch.nn.Linear(n, w), torch.nn.ReLU()]
            n = w
        return torch.nn.Sequential(*mods, torch.nn.Linear(n, n_out)).double()

    return [("encoded 2D PE L=2 2-16x2-1 [0,1]^2", mlp(2, [16, 16], 1, 0), ((0, 1), (0, 1))),
            ("encoded 2D PE L=5 2-128x2-3 [0,1/16]^2", mlp(5, [128, 128], 3, 0),
             ((0, 0.0625), (0, 0.0625))),
            ("encoded 2D PE L=3 2-12x3-1 [0,1]^2", mlp(3, [12, 12, 12], 1, 2), ((0, 1), (0, 1)))]


def encoded_cases():
    """(name, torch model, interval) of the encoded 1D cases."""
    import torch

    out = []
    for L, width, seed in ((5, 32, 0), (8, 64, 1)):
        torch.manual_seed(seed)
        m = torch.nn.Sequential(regions.PositionalEncoding(L), torch.nn.Linear(2 * L, width),
                                torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 1)).double()
        out.append((f"encoded PE L={L} 1-{width}x2-1 [0,1]", m, (0.0, 1.0)))
    return out


def fingerprint(p, model=None):
    """SHA-256 of the partition's arrays (``model``: the torch model of an encoded case)."""
    h = hashlib.sha256()
    if hasattr(p, "geoms"):          # encoded 2D: shapely faces and the engine's stats
        import shapely

        stats = {k: v for k, v in p.stats.items() if k != "engine"}
        arrays = [("wkb", np.frombuffer(b"".join(shapely.to_wkb(np.asarray(p.geoms, dtype=object))),
                                        dtype=np.uint8)),
                  ("packed_patterns", p.packed_patterns), ("A", p._A), ("c", p._c),
                  ("stats", np.frombuffer(repr(sorted(stats.items())).encode(), dtype=np.uint8))]
    else:
        arrays = [(name, getattr(p, name) if name not in ("A", "c") else p.affine[name == "c"])
                  for name in (FIELDS if p.dim == 2 else FIELDS_1D)]
    if p.dim == 1:   # the level set at the median output on a grid: crosses many pieces
        import torch

        with torch.no_grad():
            out = model(torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)[:, None])
        level = float(out.median())
        arrays.append(("level_set", np.asarray(p.level_set(level))))
    for name, arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with kernel_hashes.json")
    ap.add_argument("--write", action="store_true", help="store the current hashes")
    args = ap.parse_args(argv)
    got = {}
    for name, net, dom in cases():
        p = regions.partition(net, dom)
        got[name] = fingerprint(p, net)
        print(f"{got[name]}  {len(p):>7} regions  {name}")
    path = HERE / "kernel_hashes.json"
    if args.write:
        path.write_text(json.dumps({"machine": cpu_model(), **got}, indent=1) + "\n")
    if args.check:
        want = json.loads(path.read_text())
        made_on = want.pop("machine", "an unrecorded machine")
        bad = [k for k in want if want[k] != got.get(k)]
        print("identical" if not bad else f"DIFFERENT: {bad}")
        if bad and made_on != cpu_model():
            print(f"(the hashes were written on {made_on}, this is {cpu_model()}: bitwise hashes "
                  "hold per machine; write the base commit's here first)")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
