"""The study's runner: run the jobs (:mod:`regions.study.jobs`), keep each
finished one, resume from them, report.

``run_study(preset="quick")`` trains raw-coordinate and positional-encoding
MLPs on a white-noise image and on the paper's 1D sum of sinusoids, measures
per-sample speed, exact region features at checkpoints, gradient confusion
and the predicted first-order loss change, and writes ``report.md`` (see
:mod:`regions.study.report`).

Every (experiment, seed) pair is one job; jobs run through any
``concurrent.futures.Executor`` (``executor.submit(fn, arg)``): local
processes by default, ``dask.distributed.Client(...).get_executor()`` for a
cluster, or :class:`SerialExecutor` in-process. Everything is validated
(signals, configurations, encodings, checkpoints) before any job starts.
Each job is one task (:func:`regions.study.jobs.run_job`); with
``"ensemble": True`` in the preset, jobs of one shape train together in a
batched ensemble (:func:`regions.study.jobs.ensemble_groups`,
:mod:`regions.study.ensemble`; the same results as one by one) as one task,
and each is then analysed as its own task. Finished jobs are kept in
``out_dir/jobs`` as data (:mod:`regions.study.results`), keyed by a hash of
their configuration, so a rerun resumes and an interrupted study can be
reported (:func:`report_from_jobs`).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from concurrent.futures import Executor, Future

import numpy as np

from .._shared import process_pool
from .progress import quiet_engines, study_progress
from .jobs import analyse_job, build_jobs, ensemble_groups, job_key, run_job, train_jobs
from .presets import PRESETS
from .store import atomic_write_text

__all__ = ["run_study", "report_from_jobs", "prepare_out_dir", "SerialExecutor",
           "PRESETS", "build_jobs", "run_job", "job_key"]  # the last four: regions.study.jobs


# ----------------------------------------------------------------------------- executors
class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process (an ``Executor``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - delivered through the future
            fut.set_exception(err)
        return fut  # KeyboardInterrupt and SystemExit propagate: Ctrl-C stops the study


def _default_executor(workers=2):
    return process_pool(workers)


# ----------------------------------------------------------------------------- output folder
def prepare_out_dir(out_dir):
    """Create ``out_dir`` and ``out_dir/jobs`` and check that both are writable,
    before any job is trained; ``ValueError`` (one line) if not."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir!r} is an existing file, not a folder; give a folder")
    job_dir = os.path.join(out_dir, "jobs")
    try:
        os.makedirs(job_dir, exist_ok=True)
        for d in (out_dir, job_dir):
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=d)
            os.close(fd)
            os.remove(probe)
    except OSError as err:
        raise ValueError(f"--out {out_dir!r} is not a writable folder ({err.strerror or err})") \
            from None
    return job_dir


def _move_stale(out_dir, items):
    """Move ``items`` (path -> reason) into ``out_dir/stale/<time>/`` with a NOTE.md."""
    if not items:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    dest = os.path.join(out_dir, "stale", stamp)
    k = 1
    while os.path.exists(dest):
        k += 1
        dest = os.path.join(out_dir, "stale", f"{stamp}-{k}")
    os.makedirs(os.path.join(dest, "jobs"))
    lines = ["# Stale outputs", "",
             "Moved here by a rerun of the study into the same folder: they do not belong to "
             "the settings of that run (or could not be read). Nothing here is used.", ""]
    for path, why in sorted(items.items()):
        rel = os.path.relpath(path, out_dir)
        os.replace(path, os.path.join(dest, rel))
        lines.append(f"- `{rel}`: {why}")
    atomic_write_text(os.path.join(dest, "NOTE.md"), "\n".join(lines) + "\n")
    return dest


def _reusable_jobs(jobs, keys, out_dir, job_dir):
    """Finished jobs in ``job_dir`` whose configuration key matches, and what
    else the folder holds (moved to ``stale/``). Returns ``(reused, notes)``."""
    from .store import load_run, stem_of

    reused, stale, notes = {}, {}, []
    wanted = {stem_of(j["name"], j["seed"]): i for i, j in enumerate(jobs)}
    for fname in sorted(os.listdir(job_dir)):
        path = os.path.join(job_dir, fname)
        stem = fname.split(".", 1)[0]
        if fname.endswith(".json") and stem in wanted:
            i = wanted[stem]
            try:
                reused[i], _ = load_run(job_dir, stem, key=keys[i])
            except ValueError as err:
                why = str(err)
                notes.append(f"job {stem} not reused: {why}")
                for other in os.listdir(job_dir):
                    if other.split(".", 1)[0] == stem:
                        stale[os.path.join(job_dir, other)] = f"not reused: {why}"
        elif stem not in wanted or not re.fullmatch(
                re.escape(stem) + r"\.(json|npz|partition-e\d+\.npz)", fname):
            stale.setdefault(path, "not a job of this study's settings (other preset, seeds, "
                                   "or an unfinished write)")
    # files of a reused job that are not its own (e.g. a partition of another epoch)
    for i, r in reused.items():
        stem = stem_of(r.name, r.seed)
        own = {f"{stem}.json", f"{stem}.npz"} | {f"{stem}.partition-e{e}.npz"
                                                 for e in r.partitions}
        for other in os.listdir(job_dir):
            if other.split(".", 1)[0] == stem and other not in own:
                stale[os.path.join(job_dir, other)] = "not part of the reused job"
    # a stem that is stale loses its reuse (its files move)
    for i in list(reused):
        stem = stem_of(jobs[i]["name"], jobs[i]["seed"])
        if os.path.join(job_dir, f"{stem}.json") in stale:
            del reused[i]
    if stale or len(reused) < len(jobs):  # the folder's report is not of these jobs
        for name in ("report.md", "data", "figures"):
            path = os.path.join(out_dir, name)
            if os.path.exists(path):
                stale[path] = ("the report of an earlier run in this folder, not of the jobs "
                               "now in jobs/ (a new one is written at the end)")
    dest = _move_stale(out_dir, stale)
    if dest:
        notes.append(f"moved {len(stale)} stale file(s) to {os.path.relpath(dest, out_dir)}/ "
                     "(see NOTE.md there)")
    return reused, notes


# ----------------------------------------------------------------------------- driver
def _as_completed(futures, poll=0.2, tick=None):
    """The futures of the dict ``futures`` as they finish, also those added to it
    meanwhile, waiting in short steps: a blocking wait is not woken by Ctrl-C
    when the kernel hands the signal to another thread (torch's, the pool's),
    so the main thread looks for it every ``poll`` seconds (and calls
    ``tick()``, the progress heartbeat)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    seen = set()
    while len(seen) < len(futures):
        pending = set(futures) - seen
        done, _ = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
        if tick is not None:
            tick()
        for fut in done:
            seen.add(fut)
            yield fut


def _train_then_analyse(executor, jobs, todo, on_result, tick=None):
    """Run the ``todo`` jobs: a job alone as one task (:func:`run_job`), a group
    of :func:`ensemble_groups` as one training task (:func:`train_jobs`) and
    then one analysis task per job (:func:`analyse_job`); ``on_result(i,
    result)`` for each job as it finishes."""
    groups = [[todo[k] for k in g] for g in ensemble_groups([jobs[i] for i in todo])]
    futures = {}
    for g in groups:
        if len(g) == 1:
            futures[executor.submit(run_job, jobs[g[0]])] = ("done", g[0])
        else:
            futures[executor.submit(train_jobs, [jobs[i] for i in g])] = ("trained", g)
    for fut in _as_completed(futures, tick=tick):
        what, ids = futures[fut]
        if what == "trained":
            for i, run in zip(ids, fut.result()):
                futures[executor.submit(analyse_job, jobs[i], run)] = ("done", i)
        else:
            on_result(ids, fut.result())


def _stop_pool(executor):
    """Cancel what has not started and end the worker processes now (SIGINT)."""
    # ProcessPoolExecutor has no public way to end running workers before 3.14:
    # take its processes before shutdown forgets them
    procs = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=1.0)


def run_study(preset="quick", out_dir="report", executor=None, progress=None, seeds=None):
    """Run the study and write ``out_dir/report.md``; returns its path.

    Finished jobs are kept in ``out_dir/jobs`` (an ``.npz`` of arrays and a
    JSON file each, see :mod:`regions.study.results`), keyed by a hash of
    their configuration (:func:`job_key`): a rerun into the same folder reuses
    every finished job whose key matches and trains the others; files of
    other settings, unreadable jobs and an earlier report are moved to
    ``out_dir/stale/<time>/`` with a note. Ctrl-C stops the study at once
    (running jobs are lost, finished ones are kept).

    Parameters
    ----------
    preset : {"quick", "paper", "tiny"} or dict
        A name from :data:`PRESETS`, or a dict with an ``experiments`` list
        in the same form (other keys default to the quick preset's).
    out_dir : str or path-like
        Report folder (created); figures and data go beside ``report.md``.
    executor : concurrent.futures.Executor or int, optional
        Runs the jobs (``submit``). Default: 2 local processes. An int ``n``
        means ``n`` local processes (``1``: in this process, no pool). Pass
        ``SerialExecutor()`` to stay in-process, or a dask client's
        ``get_executor()``.
    progress : bool, callable or None
        ``None`` or ``True``: in a terminal one bar over the jobs with a line
        per finished job; otherwise plain lines on stderr, one per finished
        job and a heartbeat every 30 s (:mod:`regions.study.progress`).
        A callable gets the plain lines; ``False`` says nothing.
    seeds : sequence of int, optional
        Overrides the preset's seeds.

    Returns
    -------
    str : the path of ``report.md``.
    """
    from .report import write_report
    from .store import save_run, stem_of

    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True, False, None or a callable, got {progress!r}")
    workers = None
    if executor is None:
        workers = 2
    elif isinstance(executor, (int, np.integer)) and not isinstance(executor, bool):
        if executor < 1:
            raise ValueError(f"executor as a number of workers must be >= 1, got {executor}")
        workers = int(executor)
    elif not hasattr(executor, "submit"):
        raise ValueError(f"executor must be a concurrent.futures.Executor (with submit) or a "
                         f"number of local worker processes, got {type(executor).__name__}")
    jobs, cfg, name = build_jobs(preset, seeds)
    stems = [stem_of(j["name"], j["seed"]) for j in jobs]
    out_dir = os.fspath(out_dir)
    job_dir = prepare_out_dir(out_dir)
    keys = [job_key(j) for j in jobs]
    results, notes = _reusable_jobs(jobs, keys, out_dir, job_dir)
    todo = [i for i in range(len(jobs)) if i not in results]
    shown = study_progress(progress, len(todo))
    for n in notes:
        shown.say(n)
    shown.say(f"study {name!r}: {len(jobs)} jobs; reuses {len(results)} finished job(s), "
              f"trains {len(todo)}")
    t0 = time.perf_counter()
    own = workers is not None and todo
    if own:
        executor = SerialExecutor() if workers == 1 else _default_executor(workers)
    interrupted = False
    try:
        def finished(i, res):
            save_run(res, job_dir, stems[i], keys[i])
            results[i] = res
            shown.job_done(f"{jobs[i]['name']} seed {jobs[i]['seed']} done in {res.seconds:.1f} s "
                           f"(final mean loss {res.mean_loss[-1]:.4g})")

        with quiet_engines():
            _train_then_analyse(executor, jobs, todo, finished, tick=shown.tick)
    except KeyboardInterrupt:
        interrupted = True
        shown.close()
        if own and workers > 1:
            _stop_pool(executor)
        print(f"study interrupted: {len(results)} of {len(jobs)} jobs are saved in {job_dir}. "
              f"Rerun the same command to train only the rest, or write a report from the "
              f"saved jobs with: regions study --out {out_dir} --preset {name} --report-only "
              f"(in Python: regions.study.report_from_jobs({out_dir!r}, preset={name!r}))",
              file=sys.stderr, flush=True)
        raise
    finally:
        shown.close()
        if own and not interrupted:  # after Ctrl-C the pool is already ended: no wait
            executor.shutdown()
    ordered = [results[i] for i in range(len(jobs))]
    wall = time.perf_counter() - t0
    path = write_report(ordered, out_dir, preset=name, description=cfg.get("description", ""),
                        wall_seconds=wall)
    shown.say(f"report: {path} ({wall:.0f} s)")
    return path


def report_from_jobs(out_dir, preset="partial", description=""):
    """Write ``report.md`` from the job results saved in ``out_dir/jobs`` (for
    instance of an interrupted study); returns its path. The job files are
    data (JSON and ``.npz``), validated as they are read."""
    from .report import write_report
    from .store import load_run

    job_dir = os.path.join(os.fspath(out_dir), "jobs")
    stems = sorted(f[:-len(".json")] for f in os.listdir(job_dir) if f.endswith(".json")) \
        if os.path.isdir(job_dir) else []
    if not stems:
        raise ValueError(f"no saved job results in {job_dir!r}")
    results = [load_run(job_dir, stem)[0] for stem in stems]
    order = {}
    if preset in PRESETS:
        order = {e["name"]: i for i, e in enumerate(PRESETS[preset]["experiments"])}
        description = description or PRESETS[preset].get("description", "")
    results.sort(key=lambda r: (order.get(r.name, len(order)), r.dim != 2,
                                "raw" not in r.name, r.name, r.seed))
    return write_report(results, out_dir, preset=preset, description=description)
