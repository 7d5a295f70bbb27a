"""Benchmark of the encoded 2D engine (regions.encoded.engine2d) on the unit square.

    python benchmarks/bench_encoded2d.py                  # the default cases, prints a table
    python benchmarks/bench_encoded2d.py --cases pe2-16x2 pe5-16x2
    python benchmarks/bench_encoded2d.py --write          # also appends the table to RESULTS.md

Networks: ``2 -> PositionalEncoding(L, in_features=2) -> widths -> 1`` (or ``-> 3``) with
PyTorch's default initialisation after ``torch.manual_seed(0)``, float64. Each case runs
in its own subprocess (peak memory is that process's ``ru_maxrss``, imports included;
kernels already compiled and cached on disk). Whole square: ``regions.partition(model,
((0, 1), (0, 1)))``; sample-local: :func:`regions.encoded.sample_faces` for ``n`` uniform
random samples (``numpy.random.default_rng(0)``) on the given number of worker processes
(``trained``: after ``TRAIN_STEPS`` full-batch Adam steps on the study's 64 x 64 natural
image, training not timed); tiles:
:func:`regions.encoded.partition_tiles` on a grid of tiles with two spawned worker
processes (``peak_mb`` is this process's, ``worker_peak_mb`` the largest worker's).

A case that would run past ``--timeout`` seconds is stopped and reported as such.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (L, hidden widths, outputs, kind, samples, workers or tile grid)
CASES = {
    "pe2-16x2": (2, [16, 16], 1, "whole", 0, None),
    "pe2-32x2": (2, [32, 32], 1, "whole", 0, None),
    "pe5-16x2": (5, [16, 16], 1, "whole", 0, None),
    "pe5-32x2": (5, [32, 32], 1, "whole", 0, None),
    "pe5-32": (5, [32], 1, "whole", 0, None),
    "pe5-64": (5, [64], 1, "whole", 0, None),
    # local: sample_faces for the samples with the given number of worker processes
    "pe2-16x2-local4096": (2, [16, 16], 1, "local", 4096, 1),
    "pe5-16x2-local4096": (5, [16, 16], 1, "local", 4096, 1),
    "paper-local16": (5, [128, 128], 3, "local", 16, 1),
    "paper-local4096": (5, [128, 128], 3, "local", 4096, 1),
    "paper-local4096-2w": (5, [128, 128], 3, "local", 4096, 2),
    "paper-trained-local4096-2w": (5, [128, 128], 3, "trained-local", 4096, 2),
    "paper-whole": (5, [128, 128], 3, "whole", 0, None),
    "paper-pe2-whole": (2, [128, 128], 3, "whole", 0, None),
    "paper-pe2-trained-whole": (2, [128, 128], 3, "trained-whole", 0, None),
    # tiles: the last field is the tile grid; two spawned worker processes
    "pe5-16x2-tiles2x2": (5, [16, 16], 1, "tiles", 0, (2, 2)),
    "pe5-16x2-tiles4x4": (5, [16, 16], 1, "tiles", 0, (4, 4)),
    "pe5-32x2-tiles4x4": (5, [32, 32], 1, "tiles", 0, (4, 4)),
    "paper-tiles8x8": (5, [128, 128], 3, "tiles", 0, (8, 8)),
}
DEFAULT = ["pe2-16x2", "pe2-32x2", "pe5-16x2", "pe5-32", "pe5-64", "pe5-32x2",
           "pe2-16x2-local4096", "pe5-16x2-local4096", "paper-local16", "paper-local4096",
           "paper-local4096-2w", "paper-trained-local4096-2w"]
# the trained case: full-batch Adam (lr 1e-3) on the 64 x 64 natural image of the study
TRAIN_STEPS = 300


def model(L, widths, n_out):
    import torch

    import regions

    torch.manual_seed(0)
    mods, n = [regions.PositionalEncoding(L, in_features=2)], 4 * L
    for w in widths:
        mods += [torch.nn.Linear(n, w), torch.nn.ReLU()]
        n = w
    mods.append(torch.nn.Linear(n, n_out))
    return torch.nn.Sequential(*mods).double()


def _train(net):
    """``TRAIN_STEPS`` full-batch Adam steps on the study's 64 x 64 natural image."""
    import torch

    from regions.study.signals.images import natural_image

    sig = natural_image(64)
    x, y = torch.as_tensor(sig.coords), torch.as_tensor(sig.targets)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()


def run_case(name):
    """One case in this process: prints one JSON line."""
    import numpy as np

    import regions
    from regions.encoded import partition_encoded_plane, partition_tiles, sample_faces

    L, widths, n_out, kind, samples, tile = CASES[name]
    net = model(L, widths, n_out)
    regions.partition(model(1, [2], 1), ((0, 1), (0, 1)))        # compiled kernels loaded
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    if kind == "trained-whole":
        _train(net)
        kind = "whole"
        t = time.perf_counter()
    if kind in ("whole", "tiles"):
        if kind == "whole":
            p = partition_encoded_plane(regions.as_network(net), regions.Box((0, 1), (0, 1)),
                                        certify=False)
            t_cert = time.perf_counter()
            p.certify_crossings()            # what regions.partition does by default
            t_end = time.perf_counter()
            cert_seconds = t_end - t_cert
        else:
            # certified as partition_tiles does by default: most faces in the tiles' jobs,
            # those joined across a tile edge afterwards (seconds: the last part only)
            p = partition_tiles(net, ((0, 1), (0, 1)), tiles=tile, workers=2)
            t_end = time.perf_counter()
            cert_seconds = None
        seconds = t_end - t
        out = {"faces": len(p), "patterns": p.n_patterns,
               "certify_seconds": cert_seconds,
               "faces_certified_in_tiles": p.stats.get("faces_certified_in_tiles"),
               "crossings": p.stats["crossings"],
               "uncertified_crossings": len(p.stats["uncertified_crossings"]),
               "crossing_error_max": p.stats["crossing_error_max"],
               "faces_per_layer": p.stats.get("faces_per_layer"),
               "tile_faces": p.stats.get("tile_faces"),
               "tile_contacts": len(p.stats.get("tile_contacts", [])),
               "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
               "corner_zeros": len(p.stats["corner_zeros"]),
               "near_tangencies": len(p.stats["near_tangencies"]),
               "shallow_crossings": len(p.stats["shallow_crossings"]),
               "thin_faces": len(p.stats["thin_faces"])}
    else:
        if kind == "trained-local":
            _train(net)
            t = time.perf_counter()
        pts = np.random.default_rng(0).random((samples, 2))
        s = sample_faces(net, pts, workers=tile)
        seconds = time.perf_counter() - t
        out = {"samples": samples, "windows": s.stats["windows"], "faces": s.stats["faces"],
               "distinct_faces": len({p.wkb for p in s.polygons if p is not None})}
    out.update(name=name, seconds=seconds,
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               rss_after_imports_mb=rss0)
    print(json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=DEFAULT, choices=sorted(CASES))
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        run_case(args.case)
        return 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rows = []
    for name in args.cases:
        try:
            r = subprocess.run([sys.executable, __file__, "--case", name], env=env,
                               capture_output=True, text=True, timeout=args.timeout)
            if r.returncode != 0:
                rows.append({"name": name, "error": r.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            rows.append({"name": name, "error": f"stopped after {args.timeout:.0f} s"})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| case | faces | seconds | faces/s | peak MB | notes |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | - | - | - | - | {r['error']} |")
            continue
        note = (f"{r['samples']} samples, {r['windows']} windows, {r['distinct_faces']} distinct faces"
                if "samples" in r else
                (f"{r['tile_faces']} tile faces merged, {r['tile_contacts']} short contacts, "
                 f"largest worker {r['worker_peak_mb']:.0f} MB; " if r.get("tile_faces") else
                 f"per layer {r['faces_per_layer']}; ") + f"{r['patterns']} patterns; "
                f"shallow crossings {r['shallow_crossings']}, near-tangencies {r['near_tangencies']}, "
                f"corner zeros {r['corner_zeros']}, thin faces {r['thin_faces']}; "
                + (f"certified {r['crossings']} crossings in {r['certify_seconds']:.1f} s (in the "
                 f"seconds)" if r.get("certify_seconds") is not None else
                 f"certified {r['crossings']} crossings ({r['faces_certified_in_tiles']} faces in "
                 f"the tiles' jobs, in the seconds)") + f", error max {r['crossing_error_max']:.1e}, "
                f"{r['uncertified_crossings']} junctions uncertified")
        lines.append(f"| {r['name']} | {r['faces']} | {r['seconds']:.1f} | "
                     f"{r['faces'] / r['seconds']:.0f} | {r['peak_mb']:.0f} | {note} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        head = (f"\n### Run of {_dt.date.today().isoformat()} on {platform.node()} "
                f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
                f"`python benchmarks/bench_encoded2d.py --write`\n\n")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(head + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
