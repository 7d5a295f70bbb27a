"""The trace NTK's spectrum against the region structure (:mod:`regions.study.figures`)."""
from __future__ import annotations

import numpy as np

from .common import colours, frame, one_seed, pyplot, save


def _same_init(runs):
    """``{name: [names of later runs with the same kernel at init]}``: runs that
    differ only in the optimiser start from the same network."""
    out, seen = {}, []
    for r in runs:
        lam = np.asarray(r.checkpoints[0].spectrum.eigenvalues, float)
        twin = next((n for n, v in seen if v.shape == lam.shape and np.allclose(v, lam,
                                                                                 rtol=1e-10)),
                    None)
        if twin is None:
            seen.append((r.name, lam))
            out[r.name] = []
        else:
            out[twin].append(r.name)
    return out


def spectral_coupling(results, path):
    """The trace NTK's spectrum against the region structure (first seed):
    the normalised eigenvalues at init, the band gains at init per run (runs
    that share their initial network drawn once), the high-band gain against
    the mean Hamming distance over every (run, checkpoint), and for full-batch
    GD runs the kernel's predicted against the measured residual energy ratio
    of every band at every epoch of the prediction horizons."""
    from ..claims import top_band_gain

    plt = pyplot()
    col = colours(results)
    runs = [r for r in one_seed(results) if r.checkpoints[0].spectrum is not None]
    if not runs:
        raise ValueError("no kernel spectra in the results")
    twins = _same_init(runs)
    shown = [r for r in runs if r.name in twins]

    def label(r):
        return r.name + (f" (= {', '.join(twins[r.name])} at init)" if twins[r.name] else "")

    fig, axes = plt.subplots(2, 2, figsize=(11.5, 8.5), layout="constrained")
    ax = axes[0, 0]
    for r in shown:
        lam = np.asarray(r.checkpoints[0].spectrum.eigenvalues, float)
        lam = lam[lam > lam[0] * 1e-10] / lam[0]
        ax.loglog(np.arange(1, lam.size + 1), lam, color=col[r.name], lw=1.4, label=label(r),
                  ls="-" if r.dim == 2 else "--")
    frame(ax, "eigenvalue index k", "λ_k / λ_1 (init)", "kernel spectrum at init (dashed: 1D)")
    ax = axes[0, 1]
    for r in (r for r in shown if r.dim == 2):
        gain = np.asarray(r.checkpoints[0].spectrum.band_gain, float)
        bands = r.band_energy.bands if r.band_energy is not None else None
        x = np.arange(1, gain.size + 1)
        ax.semilogy(x, gain, "-o", ms=4, color=col[r.name], label=label(r))
        if bands is not None and len(bands) == gain.size:
            ax.set_xticks(x, [f"({lo:g},{hi:g}]" if np.isfinite(hi) else f">{lo:g}"
                              for lo, hi in bands])
    ax.axhline(1, color="0.5", lw=0.8, ls=":")
    frame(ax, "frequency band (cycles over the grid)", "band gain (init; 1 = mean eigenvalue)",
          "how fast the init kernel learns each band (2D)")
    ax = axes[1, 0]
    from matplotlib.ticker import NullFormatter
    for r in (r for r in runs if r.dim == 2):
        pts = [(c.hamming_patch, top_band_gain(r, c)) for c in r.checkpoints
               if top_band_gain(r, c) is not None]
        if pts:
            h, gg = np.array(pts).T
            ax.plot(h, gg, "-o", ms=4, color=col[r.name], label=r.name, lw=0.8)
            ax.plot(h[:1], gg[:1], "s", ms=8, mfc="none", color=col[r.name])
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    frame(ax, "mean Hamming distance over 3x3 patches (neurons)", "gain of the highest band",
          "high-band gain against pattern distance (2D)\n(every analysed checkpoint; "
          "square: init)")
    ax = axes[1, 1]
    drawn = False
    markers = "os^Dv<>p"
    for r in runs:
        if r.band_energy is None:
            continue
        meas_all, pred_all = [], []
        for c in r.checkpoints:
            s = c.spectrum
            if s is None or s.predicted_band is None:
                continue
            rows = np.flatnonzero(np.any(np.isfinite(s.predicted_band), axis=1))
            meas_all.append(np.asarray(r.band_energy.ratio, float)[rows])
            pred_all.append(np.asarray(s.predicted_band, float)[rows])
        if not meas_all:
            continue
        meas, pred = np.concatenate(meas_all), np.concatenate(pred_all)
        for b in range(meas.shape[1]):
            ax.plot(meas[:, b], pred[:, b], markers[b % len(markers)], ms=4, mfc="none",
                    color=col[r.name], alpha=0.7,
                    label=f"{r.name}" if b == 0 else None)
        drawn = True
    if drawn:
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        frame(ax, "measured residual energy ratio of a band", "predicted by the kernel",
              "full-batch GD: every band (marker: o lowest, s, ^, D highest) at every\n"
              "epoch of the horizons to the next checkpoint; dashed: equal")
    else:
        ax.text(0.5, 0.5, "no full-batch GD run with a\nspectral prediction",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.axis("off")
    return save(fig, path)
