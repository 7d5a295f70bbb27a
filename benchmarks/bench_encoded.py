"""Benchmark of the encoded 1D engine, and how much grid sampling undercounts.

1. Speed: 1 -> PE(L=8) -> 128x4 -> 1 on [0, 1] (He init: W ~ N(0, 2/fan_in),
   b ~ N(0, 0.1^2)) against the raw-coordinate 1-128x4-1 of the same init on
   the same interval: pieces, seconds (warm, best of --repeat), the ratio of
   the times and of the times per piece.
   Also the raw 1D engine on 1-1024x16-1 on [-3, 3] against regioncam.
2. Undercount: exact pieces and distinct patterns against
   ``sampled_patterns`` on the paper's 2048-point grid (t = k/2048), for an
   untrained and a briefly trained (Adam, lr 1e-3, full batch, on the paper's
   1D sum of sinusoids) encoded 1 -> PE(L) -> 128x4 -> 1.

Usage: python benchmarks/bench_encoded.py [--steps 300] [--repeat 3] [--write]
(--write replaces the "## Measured" section of docs/encoded.md with the
tables; nothing else is written).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import regions  # noqa: E402
from regions.domain import Interval  # noqa: E402
from regions.encoded import partition_encoded_1d  # noqa: E402
from regions.network import as_network  # noqa: E402
from regions.partition1d import partition_1d  # noqa: E402
from regions.sampling import sampled_patterns  # noqa: E402


def he_model(in_features, widths, seed, encoding=None):
    g = torch.Generator().manual_seed(seed)
    mods = [encoding] if encoding is not None else []
    sizes = [in_features] + list(widths)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) * np.sqrt(2.0 / a))
            lin.bias.copy_(torch.randn(b, generator=g) * 0.1)
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def timed(fn, repeat):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = first
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, first, best


def paper_signal(seed=0):
    """The paper's 1D target: sum over k in {5, 10, ..., 70} of sin(2 pi k t + 2 pi phi_k)."""
    rng = np.random.default_rng(seed)
    t = np.arange(2048) / 2048.0
    ks = np.arange(5, 75, 5)
    phi = rng.uniform(0, 1, ks.shape[0])
    y = np.sin(2 * np.pi * ks[None, :] * t[:, None] + 2 * np.pi * phi[None, :]).sum(1)
    return t, y


def train(model, steps, seed=0):
    t, y = paper_signal(seed)
    x = torch.tensor(t[:, None], dtype=torch.float32)
    target = torch.tensor(y[:, None], dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()
    return float(loss.detach())


def machine():
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} cores{load}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def raw_1d_vs_regioncam(say, repeat):
    """1-1024x16-1 on [-3, 3] (He init, numpy seed 0) against regioncam 1D."""
    try:
        import regioncam
    except ImportError:
        say("(regioncam is not installed: the raw 1D comparison is skipped)")
        say()
        return
    rng = np.random.default_rng(0)
    widths = [1] + [1024] * 16 + [1]
    pairs = [(rng.normal(0, np.sqrt(2 / a), (b, a)), rng.normal(0, 0.1, b))
             for a, b in zip(widths[:-1], widths[1:])]
    net = as_network(pairs)

    def ours():
        c0 = time.process_time()
        p = partition_1d(net, Interval(-3.0, 3.0), progress=False)
        return len(p), time.process_time() - c0

    def theirs():
        c0 = time.process_time()
        rc = regioncam.Regioncam1D((-3.0, 3.0))
        for i, (W, b) in enumerate(pairs):
            rc.linear(W.T.astype(np.float32), b.astype(np.float32))
            if i < len(pairs) - 1:
                rc.relu()
        return rc.num_edges, time.process_time() - c0

    (n_ours, cpu_ours), first, best = timed(ours, max(repeat, 2))
    (n_rc, cpu_rc), rc_first, rc_best = timed(theirs, max(repeat, 2))
    say("### Raw 1D engine: 1-1024x16-1 on [-3, 3] against regioncam 0.5 (float32, 1 thread)")
    say()
    say("| engine | pieces | first call (s) | warm wall (s) | CPU of last run (s) |")
    say("|---|---|---|---|---|")
    say(f"| regions (float64, BLAS on 2 threads) | {n_ours:,} | {first:.2f} | {best:.2f} | {cpu_ours:.2f} |")
    say(f"| regioncam | {n_rc:,} | {rc_first:.2f} | {rc_best:.2f} | {cpu_rc:.2f} |")
    say()
    say(f"Warm wall-clock ratio regioncam / regions: {rc_best / best:.1f}x "
        f"(piece counts {'agree' if n_ours == n_rc else 'differ'}).")
    say()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="Adam steps of the trained network")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (best is reported)")
    ap.add_argument("--write", action="store_true", help="replace the Measured section of docs/encoded.md")
    ap.add_argument("--no-regioncam", action="store_true",
                    help="skip the raw 1-1024x16-1 comparison with regioncam")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    lines = []
    say = lambda s="": (print(s), lines.append(s))  # noqa: E731

    # 1. speed
    enc_model = he_model(16, [128] * 4 + [1], 0, regions.PositionalEncoding(8))
    raw_model = he_model(1, [128] * 4 + [1], 0)
    enc_net, raw_net = as_network(enc_model), as_network(raw_model)
    t_fresh = time.perf_counter()
    pe, pe_first, pe_best = timed(lambda: partition_encoded_1d(enc_net, (0.0, 1.0), progress=False),
                                  args.repeat)
    pr, pr_first, pr_best = timed(lambda: partition_1d(raw_net, Interval(0.0, 1.0), progress=False),
                                  args.repeat)
    say("### Speed: 1 -> PE(L=8) -> 128x4 -> 1 against 1-128x4-1, He init, on [0, 1]")
    say()
    say("| network | pieces | distinct patterns | first call (s) | warm (s) | us per piece |")
    say("|---|---|---|---|---|---|")
    say(f"| PE(L=8) 128x4 | {len(pe):,} | {pe.n_patterns:,} | {pe_first:.2f} | {pe_best:.3f} | "
        f"{1e6 * pe_best / len(pe):.0f} |")
    say(f"| raw 128x4 | {len(pr):,} | {len(pr):,} | {pr_first:.2f} | {pr_best:.4f} | "
        f"{1e6 * pr_best / len(pr):.0f} |")
    say()
    say(f"Time ratio encoded / raw: {pe_best / pr_best:.0f}x in total, "
        f"{(pe_best / len(pe)) / (pr_best / len(pr)):.1f}x per piece "
        f"(the encoded net has {len(pe) / len(pr):.0f}x as many pieces). "
        f"Root isolation visited {pe.stats.get('boxes', 0):,} boxes.")
    say()

    # 1b. the raw 1D engine against regioncam (same network, same run)
    if not args.no_regioncam:
        raw_1d_vs_regioncam(say, args.repeat)

    # 2. exact vs sampled on the paper's grid
    grid = (np.arange(2048) / 2048.0)[:, None]
    say("### Exact count against sampled_patterns on the paper's 2048-point grid (t = k/2048)")
    say()
    say("| network | state | train MSE | exact pieces | exact distinct patterns | "
        "sampled patterns (grid) | grid / exact | pieces without a grid point |")
    say("|---|---|---|---|---|---|---|---|")
    for L in (5, 8):
        for trained in (False, True):
            model = he_model(2 * L, [128] * 4 + [1], 1, regions.PositionalEncoding(L))
            mse = "-"
            if trained:
                mse = f"{train(model, args.steps):.4f}"
            p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
            n_s, _ = sampled_patterns(model, grid)
            hit = np.unique(p.locate(grid[:, 0]))
            say(f"| PE(L={L}) 128x4 | {'Adam ' + str(args.steps) + ' steps' if trained else 'He init'} "
                f"| {mse} | {len(p):,} | {p.n_patterns:,} | {n_s:,} | {n_s / p.n_patterns:.2f} | "
                f"{len(p) - len(hit):,} |")
    say()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(f"Machine: {machine()}; {stamp}; `python benchmarks/bench_encoded.py --steps "
        f"{args.steps} --repeat {args.repeat}`.")
    print(f"(total {time.perf_counter() - t_fresh:.1f} s)")

    if args.write:
        # only the "## Measured" section of docs/encoded.md is replaced; the rest of
        # the page (and benchmarks/RESULTS.md) is edited by hand
        doc = ROOT / "docs" / "encoded.md"
        text = doc.read_text()
        start, stop = "\n## Measured\n", "\n## Reading the figures"
        if start not in text or stop not in text:
            raise SystemExit(f"{doc} has no '## Measured' ... '## Reading the figures' section")
        i, j = text.index(start), text.index(stop)
        doc.write_text(text[:i] + start + "\n" + "\n".join(lines) + "\n" + text[j:])
        print(f"wrote the Measured section of {doc}")


if __name__ == "__main__":
    main()
