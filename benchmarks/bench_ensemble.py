"""Benchmark: the study's training, one job at a time against batched ensembles.

    python benchmarks/bench_ensemble.py                     # quick preset's run set
    python benchmarks/bench_ensemble.py --preset paper --epochs-fraction 0.04

Trains the jobs of a preset (``regions.study.jobs.build_jobs``) that
``regions.study.jobs.ensemble_groups`` (with ensembles on) puts in groups of
more than one, twice in this process on one torch thread (as the study's
workers do): one by one with ``regions.study.training.train`` and as one
``train_ensemble`` per group; the order of the two alternates per group
(paired, so that load drifts hit both). Prints per group the wall and CPU
times (the CPU time is less sensitive to other load on the machine), the
speed-ups, and the largest difference between the two runs' per-sample
losses relative to the largest loss (0 when bitwise equal).
``--epochs-fraction`` shortens every job (the per-step costs are unchanged).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch

from regions.study.ensemble import train_ensemble
from regions.study.jobs import build_jobs, ensemble_groups
from regions.study.training import train


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--epochs-fraction", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    jobs, _, name = build_jobs(args.preset)
    for j in jobs:  # group as the study would with ensembles on
        j["ensemble"] = True
    if args.epochs_fraction != 1.0:
        for j in jobs:
            c = j["config"]
            epochs = max(1, int(round(c.epochs * args.epochs_fraction)))
            j["config"] = dataclasses.replace(c, epochs=epochs, checkpoints=(),
                                              record_every=min(c.record_every, epochs))
    print(f"preset {name}: {len(jobs)} jobs, epochs x{args.epochs_fraction}; "
          f"load {os.getloadavg()[0]:.2f}")
    total_single = total_batched = cpu_single = cpu_batched = 0.0
    groups = [g for g in ensemble_groups(jobs) if len(g) > 1]  # the study trains the rest alone
    for k, group in enumerate(groups):
        sigs = [jobs[i]["signal"] for i in group]
        cfgs = [jobs[i]["config"] for i in group]

        def one_by_one():
            return [train(s, c, progress=False) for s, c in zip(sigs, cfgs)]

        def batched():
            return train_ensemble(sigs, cfgs, progress=False)

        times, cpu, runs = {}, {}, {}
        pair = [("single", one_by_one), ("batched", batched)]
        for label, fn in (pair if k % 2 == 0 else pair[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            runs[label] = fn()
            times[label] = time.perf_counter() - t0
            cpu[label] = time.process_time() - c0
        scale = max(float(np.nanmax(r.losses)) for r in runs["single"])
        diff = max(float(np.nanmax(np.abs(a.losses - b.losses)))
                   for a, b in zip(runs["single"], runs["batched"]))
        total_single += times["single"]
        total_batched += times["batched"]
        cpu_single += cpu["single"]
        cpu_batched += cpu["batched"]
        names = ", ".join(f"{jobs[i]['name']}/s{jobs[i]['seed']}" for i in group)
        print(f"group {k} ({len(group)}: {names}): wall one by one {times['single']:.1f} s, "
              f"batched {times['batched']:.1f} s, x{times['single'] / times['batched']:.2f}; "
              f"cpu {cpu['single']:.1f} s vs {cpu['batched']:.1f} s, "
              f"x{cpu['single'] / cpu['batched']:.2f}; "
              f"max |loss difference| / max loss = {diff / scale:.3g}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"total: wall one by one {total_single:.1f} s, batched {total_batched:.1f} s, "
          f"x{total_single / total_batched:.2f}; cpu {cpu_single:.1f} s vs {cpu_batched:.1f} s, "
          f"x{cpu_single / cpu_batched:.2f}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
