"""The intervention's effects over the seeds (paired arms), as rows, a
markdown table and a figure (:mod:`regions.study.intervention`)."""
from __future__ import annotations

import numpy as np

__all__ = ["intervention_effects", "effects_markdown", "effects_figure"]


def _log_drop(curve, epochs, epoch):
    """``log(curve[0] / curve[at epoch])`` along the first axis."""
    i = int(np.searchsorted(epochs, epoch))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(curve[0] / curve[i])


def _arm_values(iv, when):
    """Per-area log drops of the loss and per band, and log patterns, of one
    arm at ``when`` ("early" or "end")."""
    epochs = np.asarray(iv.epochs)
    epoch = iv.early_epoch if when == "early" else int(epochs[-1])
    loss = _log_drop(iv.area_loss, epochs, epoch)  # (2,)
    b_ep = np.asarray(iv.band_epochs)
    b_epoch = b_ep[np.argmin(np.abs(b_ep - epoch))]
    band = _log_drop(iv.band_ratio, b_ep, b_epoch)  # (2, B)
    a_ep = np.asarray(iv.analysed_epochs)
    k = int(np.argmin(np.abs(a_ep - epoch)))
    with np.errstate(divide="ignore"):
        density = np.log(np.asarray(iv.area_hamming, float)[k])  # (2,)
    return {"epoch": epoch, "loss": loss, "band": band, "density": density,
            "pattern_epoch": int(a_ep[k])}


def intervention_effects(results):
    """The intervention's effects, one row (dict) per optimiser, statistic and
    time ("early", "end"), the seeds as units (paired: both arms of a seed).

    Every row has ``pair``, ``optimizer``, ``effect`` (``within``, ``control``,
    ``did``, ``direct``, ``spillover``, ``band_did``, ``density``), ``band``
    (``"(lo, hi]"`` for ``band_did``, else ``""``), ``when``, ``epoch``,
    ``estimate``, ``ci_low``, ``ci_high`` (Student-t 95% over the seeds, NaN
    for one seed), ``p_value`` (two-sided t-test against 0, not adjusted),
    ``n_units``, ``values`` (``{seed: value}``) and ``meaning``. Log drops
    are natural logs: an effect of ``+0.7`` means the treated quantity fell
    about twice as much (``e^0.7``). Positive = faster inside (or, for
    ``density``, denser inside).

    Returns ``[]`` when the results hold no complete pair of arms.
    """
    from ..stats import pool

    arms = {}
    for r in results:
        iv = getattr(r, "intervention", None)
        if iv is not None:
            arms.setdefault(iv.pair, {}).setdefault(iv.arm, {})[r.seed] = (r, iv)
    meaning = {
        "within": "treated arm: inside minus outside log loss drop",
        "control": "control arm: inside minus outside log loss drop (baseline asymmetry)",
        "did": "difference in differences: (treated in - out) - (control in - out) log drop",
        "direct": "inside: treated minus control log loss drop",
        "spillover": "outside: treated minus control log loss drop",
        "band_did": "difference in differences of the band's log residual-energy drop",
        "density": "log(neighbour Hamming inside / outside), treated minus control (the "
                   "manipulation check: boundaries crossed between neighbours)"}
    rows = []
    for pair, by_arm in arms.items():
        seeds = sorted(set(by_arm.get("treated", {})) & set(by_arm.get("control", {})))
        if not seeds:
            continue
        opt = by_arm["treated"][seeds[0]][1].optimizer
        for when in ("early", "end"):
            vals = {s: (_arm_values(by_arm["treated"][s][1], when),
                        _arm_values(by_arm["control"][s][1], when)) for s in seeds}
            t0 = vals[seeds[0]][0]
            per = {
                "within": {s: t["loss"][0] - t["loss"][1] for s, (t, c) in vals.items()},
                "control": {s: c["loss"][0] - c["loss"][1] for s, (t, c) in vals.items()},
                "did": {s: (t["loss"][0] - t["loss"][1]) - (c["loss"][0] - c["loss"][1])
                        for s, (t, c) in vals.items()},
                "direct": {s: t["loss"][0] - c["loss"][0] for s, (t, c) in vals.items()},
                "spillover": {s: t["loss"][1] - c["loss"][1] for s, (t, c) in vals.items()},
                "density": {s: (t["density"][0] - t["density"][1])
                            - (c["density"][0] - c["density"][1])
                            for s, (t, c) in vals.items()}}
            items = [(k, "", v) for k, v in per.items()]
            bands = by_arm["treated"][seeds[0]][1].bands
            for b, (lo, hi) in enumerate(bands):
                label = f"({lo:g}, {hi:g}]" if np.isfinite(hi) else f"> {lo:g}"
                items.append(("band_did", label, {
                    s: (t["band"][0, b] - t["band"][1, b]) - (c["band"][0, b] - c["band"][1, b])
                    for s, (t, c) in vals.items()}))
            for effect, band, v in items:
                v = {s: float(x) for s, x in v.items() if np.isfinite(x)}
                est = pool(v.values(), 0.0)
                rows.append({"pair": pair, "optimizer": opt, "effect": effect, "band": band,
                             "when": when,
                             "epoch": t0["pattern_epoch"] if effect == "density"
                             else t0["epoch"],
                             "estimate": est.estimate, "ci_low": est.ci_low,
                             "ci_high": est.ci_high, "p_value": est.p_value,
                             "n_units": est.n_units, "values": v, "meaning": meaning[effect]})
    return rows


def effects_markdown(results):
    """The effects of :func:`intervention_effects` as a markdown table (a
    string; empty when there is no complete pair of arms), for a report."""
    rows = intervention_effects(results)
    if not rows:
        return ""
    out = ["| comparison | optimiser | effect | band | epoch | estimate [95% CI] | seeds | p "
           "(unadjusted) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = (f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]" if np.isfinite(r["ci_low"])
              else "")
        out.append(f"| {r['pair']} | {r['optimizer']} | {r['effect']} | {r['band']} | "
                   f"{r['when']} ({r['epoch']}) | {r['estimate']:+.3g}{ci} | {r['n_units']} | "
                   f"{r['p_value']:.2g} |")
    meanings = dict.fromkeys(f"`{r['effect']}`: {r['meaning']}" for r in rows)
    return "\n".join(out) + "\n\n" + "; ".join(meanings) + "."


def effects_figure(results, path):
    """The main effects (``did``, ``direct``, ``spillover``, ``density``, and
    ``band_did`` per band) with their intervals over the seeds, one panel per
    optimiser, early and end side by side; returns ``path`` (None when there
    is no complete pair of arms)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = intervention_effects(results)
    if not rows:
        return None
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 3.8),
                             layout="constrained", squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        sel = [r for r in rows if r["pair"] == pair and r["effect"] not in ("within", "control")]
        labels = list(dict.fromkeys((r["effect"] if not r["band"] else f"band {r['band']}")
                                    for r in sel))
        for k, (when, colour) in enumerate((("early", "tab:blue"), ("end", "tab:orange"))):
            rs = [r for r in sel if r["when"] == when]
            y = np.arange(len(rs)) + (k - 0.5) * 0.3
            est = np.array([r["estimate"] for r in rs])
            lo = np.array([r["ci_low"] for r in rs])
            hi = np.array([r["ci_high"] for r in rs])
            err = np.where(np.isfinite(lo), [est - lo, hi - est], 0.0)
            ax.errorbar(est, y, xerr=err, fmt="o", ms=4, color=colour, capsize=2,
                        label=f"{when} (epoch {rs[0]['epoch']})" if rs else when)
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_yticks(np.arange(len(labels)), labels, fontsize="small")
        ax.invert_yaxis()
        n = max(r["n_units"] for r in sel)
        ax.set_title(f"{pair} ({sel[0]['optimizer']}), {n} seeds", fontsize="medium")
        ax.set_xlabel("effect (natural log units; > 0: inside faster / denser)")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize="small")
    fig.suptitle("Positional encoding on one half only: effect on that half's convergence "
                 "(mean and 95% t-interval over seeds)", fontsize="medium")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
