"""The study's presets: named lists of experiments with their analysis
settings, and the presets' measured times.

An experiment is a dict: ``name``, a ``signal`` (a :class:`~regions.study.signals.Signal`
or a ``(constructor, kwargs)`` pair of :mod:`regions.study.signals`), the
training configuration ``train`` (:class:`regions.study.training_config.TrainConfig`
fields) and the analysed checkpoints ``analyse``. :func:`regions.study.jobs.build_jobs`
turns a preset into one job per experiment and seed and validates it. A
signal whose kwargs say ``"seed": SEED_OF_JOB`` is drawn anew for every seed.
The presets' times are :data:`MEASURED_SECONDS`, quoted by their descriptions
(:func:`preset_time`), the CLI help and the README.
"""
from __future__ import annotations

__all__ = ["PRESETS", "SEED_OF_JOB", "MEASURED_SECONDS", "preset_time"]


#: A signal seed that follows the job's seed: ``("random_image", {"seed": SEED_OF_JOB})``
#: draws a new target for every seed, so each seed is one (initialisation,
#: target) unit of replication (issue 11: "vary the target").
SEED_OF_JOB = "job"


def _noise(size, channels=3):
    return ("random_image", {"size": size, "channels": channels, "seed": SEED_OF_JOB})


def _image(size, epochs, encodings, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=2, batch=256, lr=1e-3, optimizer="adam", signal=None, prefix="2d",
           **settings):
    """2D experiments, by default on a noise image drawn per seed; ``optimizer="gd"``:
    full-batch gradient descent at its default learning rate, named ``gd-2d-...``;
    ``prefix`` names the target (``2d`` noise, ``nat`` the natural image, ``band``
    the band-limited one); ``settings``: the preset's settings these experiments set
    for themselves (:data:`regions.study.jobs.EXPERIMENT_OVERRIDES`)."""
    gd = optimizer == "gd"
    exps = []
    for enc in encodings:
        name = f"{prefix}-raw" if enc is None else f"{prefix}-pe{enc}"
        exps.append({
            "name": f"gd-{name}" if gd else name,
            "signal": signal or _noise(size),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": optimizer,
                      "lr": None if gd else lr, "batch_size": None if gd else batch,
                      "shuffle": "none" if gd else "once", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse), **settings,
        })
    return exps


def _sines(n, epochs, encodings, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=4, lr=1e-3, seed=0):
    exps = []
    for enc in encodings:
        exps.append({
            "name": "1d-raw" if enc is None else f"1d-pe{enc}",
            "signal": ("sum_of_sinusoids", {"n": n, "seed": seed}),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": "adam",
                      "lr": lr, "batch_size": None, "shuffle": "none", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse),
        })
    return exps


def _intervention(size, epochs, L, optimizers=("adam", "gd"), record_every=1,
                  analyse=(0.0, 0.1, 0.5, 1.0), width=128, depth=2, batch=256, lr=1e-3):
    """The half-image intervention (:mod:`regions.study.intervention`): per
    optimiser a treated arm (PE L on x < 0.5, raw coordinates elsewhere) and
    a control arm (the same input width, encoding nowhere), on the seed's
    noise image, named ``int-<optimiser>-treated`` / ``int-<optimiser>-control``."""
    from .intervention import ARMS, HalfEncoding

    exps = []
    for opt in optimizers:
        gd = opt == "gd"
        for arm, where in ARMS.items():
            exps.append({
                "name": f"int-{opt}-{arm}", "intervention_pair": f"int-{opt}",
                "signal": _noise(size),
                "train": {"width": width, "depth": depth, "encoding": HalfEncoding(L, where),
                          "optimizer": opt, "lr": None if gd else lr,
                          "batch_size": None if gd else batch,
                          "shuffle": "none" if gd else "once", "epochs": epochs,
                          "record_every": record_every, "record_predictions": True},
                "analyse": list(analyse)})
    return exps


#: Time of ``python -m regions study --preset NAME --out NEW_DIR`` on 2 cores
#: (warm Numba cache, a fresh output folder, so nothing is reused), the one
#: source of the presets' times: their descriptions end with
#: :func:`preset_time`, which the CLI help and the README can quote.
#: ``seconds`` is the time on 2 idle cores, ``kind`` says whether it was
#: ``measured`` so or ``estimated`` from the measured CPU time
#: (``cpu_seconds``: user + sys of the whole command, workers included; the
#: jobs run one thread each, so on 2 idle cores the wall time is about the
#: serial part, start-up and report, plus half the rest). ``wall_seconds`` and
#: ``load`` are the measured wall time and the 1-minute load average it was
#: measured under. quick: measured whole on a nearly idle machine (command in
#: ``how``); earlier runs on 2 cores shared with other studies took 224-244
#: CPU-s and 348-740 s wall at load 5-10. tiny: ``time python -m regions study
#: --preset tiny --out /tmp/exp_t1``, serial start-up and report.
#: paper: one whole run (its entry); the earlier estimate from the CPU seconds
#: of seed 0 of every experiment, measured one by one with
#: ``benchmarks/bench_study_jobs.py paper 0``, was 1683 CPU-s (880 s): the
#: whole run took 1999 CPU-s, over the issue's 15 minutes on 2 idle cores.
MEASURED_SECONDS = {
    "quick": {"seconds": 203, "kind": "measured", "cpu_seconds": 386, "wall_seconds": 203,
              "load": 0.4, "how": "/usr/bin/time python -m regions study --out /tmp/q_idle, warm "
                                  "kernel cache, 2026-12-04 02:17 UTC, 2-core Intel Xeon, idle "
                                  "machine (the study's own two workers), with the whole "
                                  "partitions of the 2d-pe2 runs at their last checkpoint; "
                                  "238 s on 2026-12-03 (AMD EPYC) without them"},
    "paper": {"seconds": 4150, "kind": "estimated", "cpu_seconds": None, "wall_seconds": 3255,
              "load": 3, "how": "two measured runs, 2026-12-04 on a 2-core Intel Xeon: all 45 "
                                "jobs 01:19-02:05 UTC, 2780 s wall (the jobs' own times sum to "
                                "5536 s; this session's tests and benchmarks ran beside it, load "
                                "2.5-3) before the whole partitions of the 2d-pe2 runs, then those "
                                "3 jobs again with them (encoded_regions 'all'), 475 s; their "
                                "partitions take about 100 s per job (8-25 s per checkpoint), so "
                                "one run is about 2780 + 150 s; the whole L = 5 partitions of the "
                                "three Adam 2d-pe5 runs at their two ends (encoded_regions_beyond "
                                "'ends', added after) about 6 x 400 s more over the 2 workers"},
    "tiny": {"seconds": 20, "kind": "estimated", "cpu_seconds": 24.6, "wall_seconds": 151,
             "load": 12, "how": "most of it start-up and report, serial"},
}


def preset_time(name) -> str:
    """The time of preset ``name`` in words, from :data:`MEASURED_SECONDS`.

    Examples
    --------
    >>> preset_time("quick").startswith(("measured", "estimated", "not measured"))
    True
    """
    if name not in MEASURED_SECONDS:
        raise ValueError(f"unknown preset {name!r}; accepted: {sorted(MEASURED_SECONDS)}")
    m = MEASURED_SECONDS[name]
    if m["seconds"] is None:
        return "not measured yet"
    text = f"{m['kind']} {m['seconds']:.0f} s on 2 idle cores"
    if m["kind"] == "estimated" and m.get("cpu_seconds"):
        text += f" (from {m['cpu_seconds']:.0f} CPU-s measured)"
    return text


#: Study presets. ``analyse`` lists the checkpoints analysed, as fractions of
#: the epochs. ``encoded_crossings`` says at which analysed checkpoints the
#: exact row/column crossings of encoded 2D models are computed ("all", "ends",
#: "end"; they cost seconds to minutes per checkpoint, growing with pixels and
#: L); ``encoded_faces`` where the exact faces holding the samples are cut
#: (:func:`regions.encoded.sample_faces` at the study's tolerances,
#: :data:`regions.study.geometric_features.FACE_TOL` and ``FACE_REL_TOL``: about
#: 3-5 s for 256 samples of a trained 2x128 network at L = 5, tens of seconds for
#: 4096, on one core; at the other checkpoints the features are sampled, and the
#: report's tables say at which epochs a feature was measured how);
#: ``encoded_regions`` where the whole partition of a 2D positional-encoded run
#: with ``L <= encoded_regions_max_L`` (default 2) is made for its region count
#: (:func:`regions.study.jobs._whole_partition_at`: about 10 s per checkpoint
#: for 2x128 at L = 2; default "none"), ``encoded_regions_beyond`` the same for
#: larger L (default "none"; at L = 5 some 5-6 minutes per checkpoint on one core,
#: tiled). ``tiny`` is for tests and smoke runs (seconds). Signals given with
#: ``"seed": SEED_OF_JOB`` draw one target per seed. ``"ensemble": True`` lets
#: jobs of one shape train together (:func:`ensemble_groups`; the same results).
#: No preset sets it: measured on 2 shared cores (benchmarks/bench_ensemble.py),
#: a batched ensemble of three 2x128 nets at batch 256 takes 1.2-1.3x less CPU
#: than three single runs (the products dominate, not the per-call overhead),
#: full-batch runs gain nothing, and a group trained in one worker lengthens
#: the critical path over two workers (quick preset: 149 s with ensembles
#: against 128 s without, load 3-5).
PRESETS = {
    "quick": {
        "description": "3 seeds, each its own noise target: raw vs PE (L=2, 5) on a 16x16 noise "
                       "image (2x128, Adam 1e-3, batch 64 shuffled once, 600 epochs), raw and "
                       "PE L=5 with full-batch gradient descent (gd, lr 0.1), raw vs PE L=5 on "
                       "the natural image (Grace Hopper, 16x16) and on a band-limited image "
                       "(<= 3 cycles), the half-image PE intervention (Adam and gd) and raw vs "
                       "PE L=5 on the 1D sum of sinusoids (512 points, 4x128, full batch, "
                       "300 epochs)",
        # the 1D runs first: the longest jobs start first, so no worker idles at the end
        "experiments": _sines(512, 300, [None, 5], seed=SEED_OF_JOB)
        + _image(16, 600, [None, 2, 5], batch=64)
        + _image(16, 600, [None, 5], optimizer="gd")
        + _image(16, 600, [None, 5], batch=64, prefix="nat", analyse=(0.0, 0.1, 1.0),
                 signal=("natural_image", {"size": 16}))
        + _image(16, 600, [None, 5], batch=64, prefix="band", analyse=(0.0, 0.1, 1.0),
                 signal=("band_limited_image", {"size": 16, "max_frequency": 3,
                                                "seed": SEED_OF_JOB}))
        + _intervention(16, 600, 5, batch=64),
        "seeds": [0, 1, 2],
        "n_boot": 200, "eps": 0.5, "window": 0.1, "n_distant": 1000,
        "encoded_crossings": "end", "encoded_faces": "ends", "encoded_regions": "end",
    },
    "paper": {
        "description": "the paper's settings, 3 seeds, each its own noise target: 64x64x3 noise, "
                       "2x128, Adam 1e-3, batch 256 shuffled once, 5000 epochs, raw / PE L=2 / "
                       "PE L=5, and raw / PE L=5 with full-batch gradient descent (gd, lr 0.1); "
                       "1D sum of sinusoids, 4x128, full batch, 500 epochs, raw / PE L=5; raw / "
                       "PE L=5 on the natural image and on a band-limited image (<= 6 cycles), "
                       "32x32, 1000 epochs; the half-image PE intervention (L=5, Adam and gd), "
                       "32x32, 1000 epochs",
        # the whole L = 5 partitions (tiled, some 5-10 minutes each) of the Adam runs only,
        # at their first and last checkpoint
        "experiments": _image(64, 5000, [None, 2], record_every=10,
                              analyse=(0.0, 0.01, 0.05, 0.2, 0.5, 1.0))
        + _image(64, 5000, [5], record_every=10, analyse=(0.0, 0.01, 0.05, 0.2, 0.5, 1.0),
                 encoded_regions_beyond="ends")
        + _image(64, 5000, [None, 5], record_every=10,
                 analyse=(0.0, 0.01, 0.05, 0.2, 0.5, 1.0), optimizer="gd")
        + _sines(2048, 500, [None, 5], seed=SEED_OF_JOB)
        + _image(32, 1000, [None, 5], prefix="nat", analyse=(0.0, 0.1, 1.0),
                 signal=("natural_image", {"size": 32}))
        + _image(32, 1000, [None, 5], prefix="band", analyse=(0.0, 0.1, 1.0),
                 signal=("band_limited_image", {"size": 32, "max_frequency": 6,
                                                "seed": SEED_OF_JOB}))
        + _intervention(32, 1000, 5, record_every=5, analyse=(0.0, 0.1, 0.5, 1.0)),
        "seeds": [0, 1, 2],
        "n_boot": 500, "eps": 0.5, "window": 0.1, "n_distant": 5000,
        "encoded_crossings": "ends", "encoded_faces": "all", "encoded_regions": "all",
    },
    "tiny": {
        "description": "a smoke test: 10x10 noise and 128-point sinusoids, 2x16 networks, "
                       "60 epochs",
        "experiments": _image(10, 60, [None, 3], width=16, batch=32, analyse=(0.0, 0.5, 1.0),
                              signal=("random_image", {"size": 10, "channels": 3, "seed": 0}))
        + _sines(128, 60, [None, 3], width=16, depth=2, analyse=(0.0, 0.5, 1.0)),
        "seeds": [0],
        "n_boot": 50, "eps": 0.5, "window": 0.2, "n_distant": 200,
        "encoded_regions": "all", "encoded_regions_max_L": 3,
    },
}


for _name, _preset in PRESETS.items():
    _preset["description"] += f"; {preset_time(_name)}"
del _name, _preset
