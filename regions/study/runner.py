"""The study's jobs and their runner: presets, train a set of configurations,
measure, couple, report; resume from finished jobs.

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
Each job trains with :func:`regions.study.training.train` and measures with
:func:`regions.study.analysis.analyse_run`; finished jobs are kept in
``out_dir/jobs`` as data (:mod:`regions.study.results`), keyed by a hash of
their configuration, so a rerun resumes and an interrupted study can be
reported (:func:`report_from_jobs`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import Executor, Future

import numpy as np

from .results import atomic_write_text

__all__ = ["PRESETS", "run_study", "run_job", "build_jobs", "job_key", "prepare_out_dir",
           "SerialExecutor", "validate_jobs", "report_from_jobs"]


# ----------------------------------------------------------------------------- presets
def _image(size, epochs, encodings, seeds, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=2, batch=256, lr=1e-3):
    exps = []
    for enc in encodings:
        exps.append({
            "name": "2d-raw" if enc is None else f"2d-pe{enc}",
            "signal": ("random_image", {"size": size, "channels": 3, "seed": 0}),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": "adam",
                      "lr": lr, "batch_size": batch, "shuffle": "once", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse),
        })
    return exps


def _sines(n, epochs, encodings, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=4, lr=1e-3):
    exps = []
    for enc in encodings:
        exps.append({
            "name": "1d-raw" if enc is None else f"1d-pe{enc}",
            "signal": ("sum_of_sinusoids", {"n": n, "seed": 0}),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": "adam",
                      "lr": lr, "batch_size": None, "shuffle": "none", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse),
        })
    return exps


#: Study presets. ``analyse`` lists the checkpoints analysed, as fractions of
#: the epochs. ``encoded_crossings`` says at which analysed checkpoints the
#: exact row/column crossings of encoded 2D models are computed ("all", "ends",
#: "end"; they cost seconds to minutes per checkpoint, growing with pixels and
#: L). The paper preset takes ~17 min per seed on one core. ``tiny`` is for
#: tests and smoke runs (seconds).
PRESETS = {
    "quick": {
        "description": "raw vs PE (L=2, 5) on a 32x32 noise image (2x128, Adam 1e-3, batch 256 "
                       "shuffled once, 1500 epochs) and raw vs PE L=5 on the 1D sum of "
                       "sinusoids (2048 points, 4x128, full batch, 500 epochs, as in the "
                       "paper); 1 seed; ~1 minute on 2 idle cores",
        "experiments": _image(32, 1500, [None, 2, 5], [0]) + _sines(2048, 500, [None, 5]),
        "seeds": [0],
        "n_boot": 200, "eps": 0.5, "window": 0.1, "n_distant": 2000,
        "encoded_crossings": "end",
    },
    "paper": {
        "description": "the paper's settings: 64x64x3 noise, 2x128, Adam 1e-3, batch 256 "
                       "shuffled once, 5000 epochs, raw / PE L=2 / PE L=5; 1D sum of "
                       "sinusoids, 4x128, full batch, 500 epochs, raw / PE L=5; 3 seeds",
        "experiments": _image(64, 5000, [None, 2, 5], [0, 1, 2], record_every=10,
                              analyse=(0.0, 0.01, 0.05, 0.2, 0.5, 1.0))
        + _sines(2048, 500, [None, 5]),
        "seeds": [0, 1, 2],
        "n_boot": 500, "eps": 0.5, "window": 0.1, "n_distant": 5000,
        "encoded_crossings": "ends",
    },
    "tiny": {
        "description": "a smoke test: 10x10 noise and 128-point sinusoids, 2x16 networks, "
                       "60 epochs",
        "experiments": _image(10, 60, [None, 3], [0], width=16, batch=32,
                              analyse=(0.0, 0.5, 1.0))
        + _sines(128, 60, [None, 3], width=16, depth=2, analyse=(0.0, 0.5, 1.0)),
        "seeds": [0],
        "n_boot": 50, "eps": 0.5, "window": 0.2, "n_distant": 200,
    },
}


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


def _worker_init():
    # Before torch or Numba load OpenMP in this fresh (spawned) worker: threads
    # wait passively, so the workers' pools do not spin against each other on
    # the same cores (measured on 2 busy cores: an Adam loop 6x and a 2D
    # partition 10x slower with the default spinning). A user's setting wins.
    # Ctrl-C reaches the whole process group: the workers ignore it and the
    # parent ends them (run_study), so the study stops at once.
    import signal

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_executor(workers=2):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                               mp_context=multiprocessing.get_context("spawn"))


# ----------------------------------------------------------------------------- jobs
def _resolve_preset(preset):
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; accepted: {sorted(PRESETS)} or a dict "
                             "with an 'experiments' list")
        return copy.deepcopy(PRESETS[preset]), preset
    if isinstance(preset, dict) and "experiments" in preset:
        base = copy.deepcopy(PRESETS["quick"])
        base.update(copy.deepcopy(preset))
        return base, preset.get("name", "custom")
    raise ValueError(f"preset must be one of {sorted(PRESETS)} or a dict with an 'experiments' "
                     f"list, got {type(preset).__name__}")


def _make_signal(spec):
    from . import signals

    if hasattr(spec, "targets") and hasattr(spec, "grid_shape"):
        return spec  # a Signal
    try:
        kind, kwargs = spec
    except (TypeError, ValueError):
        raise ValueError(f"an experiment's 'signal' must be a Signal or a (constructor, kwargs) "
                         f"pair such as ('random_image', {{'size': 32}}), got {spec!r}") from None
    makers = {"random_image": signals.random_image, "sum_of_sinusoids": signals.sum_of_sinusoids,
              "image_file": signals.image_file, "from_array": signals.from_array}
    if kind not in makers:
        raise ValueError(f"unknown signal constructor {kind!r}; accepted: {sorted(makers)}")
    return makers[kind](**kwargs)


def _analysed_epochs(exp, epochs):
    """Analysed checkpoints: floats are fractions of the epochs, ints are epochs."""
    out = set()
    for a in exp.get("analyse", (0.0, 1.0)):
        if isinstance(a, float) and 0.0 <= a <= 1.0:
            out.add(int(round(a * epochs)))
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool) and 0 <= a <= epochs:
            out.add(int(a))
        else:
            raise ValueError(f"experiment {exp.get('name')!r}: analysed checkpoint {a!r} must be "
                             f"a fraction (float) in [0.0, 1.0] or an epoch (int) in 0..{epochs}")
    return sorted(out | {0, epochs})


def build_jobs(preset="quick", seeds=None):
    """The list of jobs (dicts) for a preset: one per experiment and seed.

    Everything is validated here, before any training: the signal (shape,
    finite targets), the training configuration, that the encoding's input
    dimension matches the signal, and that the analysed checkpoints are
    epochs of the run.
    """
    from .training import TrainConfig

    cfg, name = _resolve_preset(preset)
    if seeds is None:
        seeds = cfg.get("seeds", [0])
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    exps = cfg.get("experiments", [])
    if not exps:
        raise ValueError(f"preset {name!r} has no experiments")
    names = [e.get("name") for e in exps]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"experiment names must be present and unique, got {names}")
    jobs = []
    for exp in exps:
        signal = _make_signal(exp["signal"])
        tr = dict(exp["train"])
        epochs = int(tr.get("epochs", 500))
        analysed = _analysed_epochs(exp, epochs)
        for seed in seeds:
            tcfg = TrainConfig(**{**tr, "seed": seed, "checkpoints": tuple(analysed)})
            validate_jobs_signal(signal, tcfg, exp["name"])
            jobs.append({
                "name": exp["name"], "seed": seed, "signal": signal, "config": tcfg,
                "analyse": analysed, "n_boot": int(cfg["n_boot"]), "eps": float(cfg["eps"]),
                "window": float(cfg["window"]), "n_distant": int(cfg["n_distant"]),
                "encoded_crossings": cfg.get("encoded_crossings", "all"),
                "threads": 1,
            })
    return jobs, cfg, name


def validate_jobs_signal(signal, config, name):
    """Check that ``config`` can be trained on ``signal``; ``ValueError`` if not."""
    import torch

    from .signals import Signal
    from .training import build_model

    if not isinstance(signal, Signal):
        raise ValueError(f"experiment {name!r}: the signal must be a regions.study Signal, got "
                         f"{type(signal).__name__}")
    if not np.all(np.isfinite(signal.targets)):
        raise ValueError(f"experiment {name!r}: the signal's targets contain NaN or inf")
    if signal.dim not in (1, 2):
        raise ValueError(f"experiment {name!r}: signals must be 1D or 2D grids, got "
                         f"grid_shape {signal.grid_shape}")
    try:
        model = build_model(config, signal.dim, signal.channels)
        with torch.no_grad():
            out = model(torch.as_tensor(signal.coords[:2], dtype=torch.float32))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"experiment {name!r}: the model of the config does not accept the "
                         f"{signal.dim}D coordinates of signal {signal.name!r} (encoding "
                         f"mismatch?): {err}") from None
    if tuple(out.shape) != (2, signal.channels):
        raise ValueError(f"experiment {name!r}: the model outputs {tuple(out.shape[1:])} values "
                         f"per sample but the signal has {signal.channels} channels")
    enc = model[0] if not isinstance(model[0], torch.nn.Linear) else None
    if enc is not None and getattr(enc, "in_features", signal.dim) != signal.dim:
        raise ValueError(f"experiment {name!r}: the encoding takes {enc.in_features}-dimensional "
                         f"coordinates but the signal is {signal.dim}D")
    bad = [e for e in config.checkpoint_epochs if e > config.epochs]
    if bad:
        raise ValueError(f"experiment {name!r}: checkpoints {bad} are past the last epoch "
                         f"{config.epochs}")


def validate_jobs(jobs):
    for j in jobs:
        validate_jobs_signal(j["signal"], j["config"], j["name"])


# ----------------------------------------------------------------------------- jobs
def run_job(job):
    """Train one (experiment, seed) job and analyse it; returns a
    :class:`regions.study.results.RunResult`."""
    import torch

    from .analysis import analyse_run
    from .training import train

    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    run = train(job["signal"], job["config"], progress=False)
    res = analyse_run(run, job)
    res.seconds = time.perf_counter() - t0
    return res


def _hashable(v):
    """A JSON-able form of a configuration value; arrays and tensors by content hash."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        return {"array": hashlib.sha256(a.tobytes()).hexdigest(), "dtype": str(a.dtype),
                "shape": list(a.shape)}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _hashable(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (list, tuple)):
        return [_hashable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "state_dict"):  # an encoding module given as an object
        return {"module": type(v).__name__, "state": _hashable(dict(v.state_dict()))}
    return repr(v)


def job_key(job):
    """Hash of everything that determines a job's result: the experiment, seed,
    signal (by content), training configuration, analysis settings, the schema
    version and the versions of regions, torch and numpy."""
    import torch

    from .. import __version__
    from .results import SCHEMA_VERSION

    sig = job["signal"]
    cfg = job["config"].to_dict()
    desc = {"schema": SCHEMA_VERSION, "regions": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "name": job["name"], "seed": job["seed"],
            "signal": {"name": sig.name, "grid_shape": list(sig.grid_shape),
                       "coord_range": list(sig.coord_range), "endpoint": sig.endpoint,
                       "coords": sig.coords, "targets": sig.targets},
            "config": cfg, "analyse": job["analyse"],
            **{k: job[k] for k in ("n_boot", "eps", "window", "n_distant", "encoded_crossings",
                                   "threads")}}
    text = json.dumps(_hashable(desc), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    from .results import load_run, stem_of

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
def _progress_fn(progress):
    if callable(progress):
        return progress
    show = progress if progress is not None else (hasattr(sys.stderr, "isatty")
                                                  and sys.stderr.isatty())
    if show:
        return lambda msg: print(msg, file=sys.stderr, flush=True)
    return lambda msg: None


def _as_completed(futures, poll=0.2):
    """The futures as they finish, waiting in short steps: a blocking wait is not
    woken by Ctrl-C when the kernel hands the signal to another thread (torch's,
    the pool's), so the main thread looks for it every ``poll`` seconds."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
        yield from done


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
        ``True`` prints one line per finished job to stderr; a callable gets
        the messages; ``None`` prints when stderr is a terminal.
    seeds : sequence of int, optional
        Overrides the preset's seeds.

    Returns
    -------
    str : the path of ``report.md``.
    """
    from .report import write_report
    from .results import save_run, stem_of

    say = _progress_fn(progress)
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
    for n in notes:
        say(n)
    todo = [i for i in range(len(jobs)) if i not in results]
    say(f"study {name!r}: {len(jobs)} jobs; reuses {len(results)} finished job(s), "
        f"trains {len(todo)}")
    t0 = time.perf_counter()
    own = workers is not None and todo
    if own:
        executor = SerialExecutor() if workers == 1 else _default_executor(workers)
    interrupted = False
    try:
        futures = {executor.submit(run_job, jobs[i]): i for i in todo}
        for k, fut in enumerate(_as_completed(futures), 1):
            i = futures[fut]
            res = fut.result()
            save_run(res, job_dir, stems[i], keys[i])
            results[i] = res
            say(f"[{k}/{len(todo)}] {jobs[i]['name']} seed {jobs[i]['seed']} done in "
                f"{res.seconds:.1f} s (final mean loss {res.mean_loss[-1]:.4g})")
    except KeyboardInterrupt:
        interrupted = True
        if own and workers > 1:
            _stop_pool(executor)
        print(f"study interrupted: {len(results)} of {len(jobs)} jobs are saved in {job_dir}. "
              f"Rerun the same command to train only the rest, or write a report from the "
              f"saved jobs with: python -c \"import regions.study as s; "
              f"s.report_from_jobs({out_dir!r})\"", file=sys.stderr, flush=True)
        raise
    finally:
        if own and not interrupted:  # after Ctrl-C the pool is already ended: no wait
            executor.shutdown()
    ordered = [results[i] for i in range(len(jobs))]
    wall = time.perf_counter() - t0
    path = write_report(ordered, out_dir, preset=name, description=cfg.get("description", ""),
                        wall_seconds=wall)
    say(f"report: {path} ({wall:.0f} s)")
    return path


def report_from_jobs(out_dir, preset="partial", description=""):
    """Write ``report.md`` from the job results saved in ``out_dir/jobs`` (for
    instance of an interrupted study); returns its path. The job files are
    data (JSON and ``.npz``), validated as they are read."""
    from .report import write_report
    from .results import load_run

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
