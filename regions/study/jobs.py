"""The study's jobs: the list of (experiment, seed) jobs of a preset, validated
before any training, their training (batched where they share a shape) and
analysis, and the key of a job's configuration.

A preset (:mod:`regions.study.presets`) lists experiments (a signal, a
training configuration, the analysed checkpoints) and the analysis settings;
:func:`build_jobs` turns it into one
job (a dict) per experiment and seed. :func:`ensemble_groups` groups the jobs
that can train in one batched ensemble (:mod:`regions.study.ensemble`: same
results as one by one), :func:`train_jobs` trains a group and
:func:`analyse_job` analyses one trained job
(:func:`regions.study.analysis.analyse_run`); :func:`run_job` does both for
one job alone. :func:`job_key` hashes everything that determines a job's
result, so that finished jobs are reused only when it matches
(:mod:`regions.study.runner`); how a job was grouped is not part of it.

A signal whose kwargs say ``"seed": SEED_OF_JOB`` is drawn anew for every
seed (the noise images, the band-limited images, the 1D phases), so a seed
is one (initialisation, target) unit of replication and the experiments
compared by seed share that seed's target. The ``int-*`` experiments are the
arms of the half-image intervention (:mod:`regions.study.intervention`);
their ``intervention_pair`` names the comparison.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time

import numpy as np

from .presets import PRESETS, SEED_OF_JOB

__all__ = ["build_jobs", "validate_jobs", "validate_jobs_signal", "run_job", "ensemble_groups",
           "train_jobs", "analyse_job", "job_key"]


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


def _make_signal(spec, seed=0):
    """The Signal of an experiment's ``signal`` entry for the job of ``seed``
    (used where the kwargs say ``"seed": SEED_OF_JOB``)."""
    from . import signals

    if hasattr(spec, "targets") and hasattr(spec, "grid_shape"):
        return spec  # a Signal
    try:
        kind, kwargs = spec
        kwargs = dict(kwargs)
    except (TypeError, ValueError):
        raise ValueError(f"an experiment's 'signal' must be a Signal or a (constructor, kwargs) "
                         f"pair such as ('random_image', {{'size': 32}}), got {spec!r}") from None
    makers = {"random_image": signals.random_image, "sum_of_sinusoids": signals.sum_of_sinusoids,
              "band_limited_image": signals.band_limited_image,
              "natural_image": signals.natural_image,
              "image_file": signals.image_file, "from_array": signals.from_array}
    if kind not in makers:
        raise ValueError(f"unknown signal constructor {kind!r}; accepted: {sorted(makers)}")
    if isinstance(kwargs.get("seed"), str):
        if kwargs["seed"] != SEED_OF_JOB:
            raise ValueError(f"a signal's seed must be an int or {SEED_OF_JOB!r} (the job's "
                             f"seed), got {kwargs['seed']!r}")
        kwargs["seed"] = int(seed)
    try:
        return makers[kind](**kwargs)
    except TypeError as err:
        raise ValueError(f"signal constructor {kind!r} does not take {sorted(kwargs)}: "
                         f"{err}") from None


_WHICH = ("all", "ends", "end", "none")


def _which(cfg, key):
    """At which analysed checkpoints a costly encoded 2D measurement runs: ``cfg[key]``,
    one of :data:`_WHICH` (default ``"all"``)."""
    value = cfg.get(key, "all")
    if value not in _WHICH:
        raise ValueError(f"{key} must be one of {_WHICH}, got {value!r}")
    return value


def _whole_partition_at(cfg, train, signal):
    """Where a 2D positional-encoded job gets its whole exact partition (the region
    count): ``cfg["encoded_regions"]`` (default ``"none"``) for a
    ``PositionalEncoding`` of ``L <= cfg["encoded_regions_max_L"]`` (default 2: a
    trained 2x128 net at L = 2 has about 54k faces, about 10 s on one core), and
    ``cfg["encoded_regions_beyond"]`` (default ``"none"``) for a larger ``L`` (at
    L = 5 about 1.6 million faces, some 5-6 minutes a checkpoint on one core, made
    tile by tile, :func:`regions.study.analysis._encoded_regions`). Jobs it does not
    apply to carry no key, so their :func:`job_key` is what it was before the setting
    existed."""
    value = cfg.get("encoded_regions", "none")
    beyond = cfg.get("encoded_regions_beyond", "none")
    for key, v in (("encoded_regions", value), ("encoded_regions_beyond", beyond)):
        if v not in _WHICH:
            raise ValueError(f"{key} must be one of {_WHICH}, got {v!r}")
    max_L = cfg.get("encoded_regions_max_L", 2)
    if isinstance(max_L, bool) or not isinstance(max_L, (int, np.integer)) or max_L < 1:
        raise ValueError(f"encoded_regions_max_L must be a positive int, got {max_L!r}")
    L = train.get("encoding")
    if signal.dim != 2 or isinstance(L, bool) or not isinstance(L, (int, np.integer)):
        return "none"
    return value if L <= max_L else beyond


#: The preset's settings an experiment may set for itself (its whole partitions cost
#: minutes per checkpoint at L = 5: a preset can ask them of one experiment only)
EXPERIMENT_OVERRIDES = ("encoded_regions", "encoded_regions_beyond", "encoded_regions_max_L")


#: The keys an experiment may have
EXPERIMENT_KEYS = ("name", "signal", "train", "analyse", "intervention_pair") + EXPERIMENT_OVERRIDES


def _with_overrides(cfg, exp):
    """The preset's settings ``cfg`` with those of :data:`EXPERIMENT_OVERRIDES` the
    experiment ``exp`` sets replaced by its own; ``ValueError`` naming the
    experiment for a key outside :data:`EXPERIMENT_KEYS` (a misspelt setting would
    otherwise be ignored)."""
    unknown = sorted(set(exp) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ValueError(f"experiment {exp.get('name')!r}: unknown keys {unknown}; accepted: "
                         f"{list(EXPERIMENT_KEYS)}")
    return {**cfg, **{k: exp[k] for k in EXPERIMENT_OVERRIDES if k in exp}}


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
    from .training_config import TrainConfig

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
        tr = dict(exp["train"])
        epochs = int(tr.get("epochs", 500))
        analysed = _analysed_epochs(exp, epochs)
        for seed in seeds:
            signal = _make_signal(exp["signal"], seed)
            tcfg = TrainConfig(**{**tr, "seed": seed, "checkpoints": tuple(analysed)})
            validate_jobs_signal(signal, tcfg, exp["name"])
            own = _with_overrides(cfg, exp)
            try:
                regions_at = _whole_partition_at(own, tr, signal)
            except ValueError as err:
                raise ValueError(f"experiment {exp['name']!r}: {err}") from None
            jobs.append({
                **({"encoded_regions": regions_at} if regions_at != "none" else {}),
                "name": exp["name"], "seed": seed, "signal": signal, "config": tcfg,
                "analyse": analysed, "n_boot": int(cfg["n_boot"]), "eps": float(cfg["eps"]),
                "window": float(cfg["window"]), "n_distant": int(cfg["n_distant"]),
                "encoded_crossings": _which(cfg, "encoded_crossings"),
                "encoded_faces": _which(cfg, "encoded_faces"),
                "threads": 1, "ensemble": bool(cfg.get("ensemble", False)),
                **({"intervention_pair": str(exp["intervention_pair"])}
                   if "intervention_pair" in exp else {}),
            })
    return jobs, cfg, name


def validate_jobs_signal(signal, config, name):
    """Check that ``config`` can be trained on ``signal``; ``ValueError`` if not."""
    import torch

    from .signals import Signal
    from .training_config import build_model

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


# ----------------------------------------------------------------------------- running
def run_job(job):
    """Train one (experiment, seed) job alone and analyse it; returns a
    :class:`regions.study.results.RunResult`."""
    return analyse_job(job, train_jobs([job])[0])


def ensemble_groups(jobs):
    """Lists of indices of ``jobs`` that train together, in first-appearance
    order: jobs that ask for it (``job["ensemble"]``) and share an
    :func:`regions.study.ensemble.ensemble_key` and thread count, split into
    near-equal groups of at most :func:`regions.study.ensemble.ensemble_size`;
    every other job alone."""
    from .ensemble import ensemble_key, ensemble_size

    shared, order = {}, []
    for i, job in enumerate(jobs):
        key = ensemble_key(job["signal"], job["config"]) if job.get("ensemble") else None
        key = ("alone", i) if key is None else (key, job.get("threads"))
        if key not in shared:
            shared[key] = []
            order.append(key)
        shared[key].append(i)
    groups = []
    for key in order:
        ids = shared[key]
        size = ensemble_size(jobs[ids[0]]["signal"], jobs[ids[0]]["config"])
        parts = -(-len(ids) // size)
        groups += [ids[k * len(ids) // parts:(k + 1) * len(ids) // parts] for k in range(parts)]
    return groups


def train_jobs(jobs):
    """Train a group of jobs (one of :func:`ensemble_groups`); returns their
    :class:`~regions.study.run_record.Run` in order: one batched ensemble
    (:func:`regions.study.ensemble.train_ensemble`) for several jobs,
    :func:`regions.study.training.train` for one."""
    from .ensemble import train_ensemble
    from .training import train

    threads = jobs[0].get("threads")
    if len(jobs) == 1:
        return [train(jobs[0]["signal"], jobs[0]["config"], progress=False, threads=threads)]
    return train_ensemble([j["signal"] for j in jobs], [j["config"] for j in jobs],
                          progress=False, threads=threads)


def analyse_job(job, run):
    """Analyse a trained job; returns a :class:`regions.study.results.RunResult`
    whose ``seconds`` is the run's training time plus the analysis's."""
    import torch

    from .analysis import analyse_run

    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    res = analyse_run(run, job)
    res.seconds = float(run.seconds) + (time.perf_counter() - t0)
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
                                   "encoded_faces", "threads")},
            **{k: job[k] for k in ("intervention_pair", "encoded_regions") if k in job}}
    text = json.dumps(_hashable(desc), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


