"""The findings table under construction and the helpers every group of claims
uses: per-run values, checkpoint lookups, pooling into rows (:class:`Table`)."""
from __future__ import annotations

import numpy as np

from ..results import Finding, group_by_name, lookup
from ..stats import RULES, adjust, pool, rule_number
from ..text import fmt as _fmt


#: The learning-phase speed measures (regions.study.convergence.learning_window)
#: and their partial versions, as named in the coupling rows.
LEARNING_SPEEDS = ("lp_rate", "lp_rate_partial", "lp_time", "lp_time_partial")


def measured_at(runs, which, get):
    """``get(checkpoint)`` at checkpoint ``which`` (see :meth:`RunResult.checkpoint`)
    of every run, leaving out the runs where it was not measured (None)."""
    values = [get(r.checkpoint(which)) for r in runs]
    return [v for v in values if v is not None]


def seed_correlations(results, name, feature, speed, which):
    """The coupling rows of ``(feature, speed)`` at a checkpoint (``which``, see
    :meth:`RunResult.checkpoint`) of every seed of run ``name``."""
    out = []
    for r in group_by_name(results).get(name, []):
        row = r.checkpoint(which).rho(feature, speed)
        if row is not None:
            out.append(row)
    return out


def per_run(runs, get):
    """``{seed: get(run)}`` over the runs of one experiment; a None or
    non-finite value is kept as None (the run did not measure it)."""
    out = {}
    for r in runs:
        v = get(r)
        out[r.seed] = None if v is None or not np.isfinite(v) else float(v)
    return out


def safe_ratio(a, b):
    return a / b if b != 0 else np.nan


# ----------------------------------------------------------------------------- table
class Table:
    """The findings under construction: one pooled statistic per row."""

    def __init__(self):
        self.rows = []
        self.group = ""

    def add(self, claim, run, statistic, units, null, alternative, scale, paper, note=""):
        """Pool ``units`` ({seed: value}) and keep the row; ``note`` is appended
        to the generated description of what was measured."""
        finite = {k: v for k, v in units.items() if v is not None and np.isfinite(v)}
        if scale == "log":
            finite = {k: v for k, v in finite.items() if v > 0}
        est = pool(finite.values(), null, scale)
        ci = (f" [{_fmt(est.ci_low)}, {_fmt(est.ci_high)}]" if est.n_units > 1 else "")
        measured = (f"{_fmt(est.estimate)}{ci} over {est.n_units} run"
                    f"{'s' if est.n_units != 1 else ''}" if est.n_units else "not measured")
        left_out = [k for k in units if k not in finite]
        if left_out:
            why = "not measured, or not a positive ratio" if scale == "log" else "not measured"
            measured += f"; left out ({why}): seed {', '.join(str(k) for k in left_out)}"
        if note:
            measured += f"; {note}"
        self.rows.append(dict(
            group=self.group, claim=claim, run=run, statistic=statistic, null=float(null),
            alternative=alternative, estimate=est.estimate, ci_low=est.ci_low,
            ci_high=est.ci_high, n_units=est.n_units, method=est.method, p_value=est.p_value,
            values="; ".join(f"seed {k}={_fmt(v, 4)}" for k, v in finite.items()),
            paper=paper, measured=measured))

    def findings(self):
        """The rows as Findings, p-values adjusted over the whole table."""
        p_adj = adjust([r["p_value"] for r in self.rows])
        out = []
        for r, p in zip(self.rows, p_adj):
            r = {**r, "p_adjusted": float(p)}
            k = rule_number(null=r["null"], alternative=r["alternative"],
                            estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                            p_adjusted=r["p_adjusted"], n_units=r["n_units"])
            out.append(Finding(**r, verdict=RULES[k - 1][0], rule=k))
        return out


def at_checkpoint(which, get):
    """A getter of ``get(checkpoint)`` at checkpoint ``which`` of a run."""
    return lambda r: get(r.checkpoint(which))


def measured(which, *path):
    """A getter of the value at ``path`` (see :func:`~regions.study.results.lookup`)
    at checkpoint ``which`` of a run, None where it was not measured."""
    return at_checkpoint(which, lambda c: lookup(c, *path))


def window_note(rs):
    cps = [next((c for c in r.checkpoints if c.learning_window is not None), None) for r in rs]
    return "windows " + ", ".join(f"seed {r.seed}: features at {c.epoch}, window "
                                  f"{c.learning_window[0]}-{c.learning_window[1]}"
                                  for r, c in zip(rs, cps) if c is not None)


def is_gd(r):
    """Whether run ``r`` was trained by plain full-batch gradient descent."""
    return (r.config or {}).get("optimizer") == "gd"


def record_steps(r, which):
    """Epochs from checkpoint ``which`` of run ``r`` to the next record: the
    length of the interval of its ``observed_change`` (None at the last record)."""
    e = r.checkpoint(which).epoch
    rec = np.asarray(r.record_epochs)
    i = int(np.searchsorted(rec, e))
    return int(rec[i + 1] - rec[i]) if i + 1 < rec.size else None


def epoch_span(k):
    return f"{k} epoch" + ("" if k == 1 else "s")


def pair_ratio(c, cls):
    a = c.adam_step
    if a is None:
        return None
    x, y = a.mean_abs_pair.get(cls), a.mean_abs_pair.get("far")
    return None if x is None or y is None or y <= 0 else x / y


def group_by_seed(results):
    """Runs grouped by seed, in first-appearance order."""
    out = {}
    for r in results:
        out.setdefault(r.seed, []).append(r)
    return out
