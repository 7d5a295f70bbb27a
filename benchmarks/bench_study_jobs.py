"""CPU and wall seconds of single study jobs, one after another in this process
(one torch thread), for estimating a preset's time on a shared machine: the
CPU seconds hardly change with the load, the wall seconds do.

    PYTHONPATH=. OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \\
        python benchmarks/bench_study_jobs.py PRESET SEEDS [NAME,NAME,...]

prints one JSON line per job (name, seed, wall, cpu, train_wall, loss_end).
The preset times in regions.study.presets.MEASURED_SECONDS were estimated from it.
"""
import json
import sys
import time

from regions.study.jobs import build_jobs, run_job


def main(argv):
    preset, seeds = argv[1], [int(s) for s in argv[2].split(",")]
    names = argv[3].split(",") if len(argv) > 3 else None
    jobs, _, _ = build_jobs(preset, seeds)
    for job in jobs:
        if names and job["name"] not in names:
            continue
        t, c = time.perf_counter(), time.process_time()
        res = run_job(job)
        print(json.dumps({"name": job["name"], "seed": job["seed"],
                          "wall": round(time.perf_counter() - t, 2),
                          "cpu": round(time.process_time() - c, 2),
                          "train_wall": round(res.train_seconds, 2),
                          "loss_end": float(res.mean_loss[-1])}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
