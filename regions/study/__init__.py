"""The spectral-bias study: training with a record, region features per
sample, their coupling to per-sample speed, and the report.

Data flow: ``presets`` -> ``jobs`` (``signals`` + ``training_config``) ->
``training`` (a ``run_record.Run``) -> ``analysis`` (features, ``dynamics``:
factors, gram, ntk; coupling, convergence, bands, on the ``grid``) ->
``results`` (the typed schema, stored per job) -> ``claims`` -> ``report`` +
``figures``; ``runner`` drives the jobs.

``run_study`` is the entry point (``regions study`` on the command line).
Names load lazily, so ``import regions.study`` stays cheap.
"""
from importlib import import_module

_API = {
    "run_study": "regions.study.runner",
    "PRESETS": "regions.study.presets",
    "SerialExecutor": "regions.study.runner",
    "build_jobs": "regions.study.jobs",
    "run_job": "regions.study.jobs",
    "report_from_jobs": "regions.study.runner",
    "RunResult": "regions.study.results",
    "Checkpoint": "regions.study.results",
    "Finding": "regions.study.results",
    "analyse_run": "regions.study.analysis",
    "analyse_checkpoint": "regions.study.analysis",
    "findings": "regions.study.claims",
    "sample_features": "regions.study.features",
    "Features": "regions.study.features",
    "spearman_ci": "regions.study.coupling",
    "correlation_table": "regions.study.coupling",
    "prediction_agreement": "regions.study.coupling",
    "write_report": "regions.study.report",
    # the training layer
    "Signal": "regions.study.signals",
    "sum_of_sinusoids": "regions.study.signals",
    "random_image": "regions.study.signals",
    "image_file": "regions.study.signals",
    "from_array": "regions.study.signals",
    "TrainConfig": "regions.study.training_config",
    "build_model": "regions.study.training_config",
    "Run": "regions.study.run_record",
    "train": "regions.study.training",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regions.study' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
