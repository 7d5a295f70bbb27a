"""The report's sections on the training dynamics: where the old numbers were an
artefact, the kernel against the residual, first-order predictions, the
spectrum and spectral coupling, gradient confusion, the intervention."""
from __future__ import annotations

import numpy as np

from ..claims import measured_at
from ..intervention import effects_markdown
from ..results import lookup
from ..text import fmt as _fmt
from ..text import markdown_table as _table
from ..text import mean_sd as _ms
from .format import at_checkpoints, mean_sd_share, over_seeds, plural, section, share_text


@section("Where the old numbers were an artefact")
def artefacts_section(L, results, g, figs, found):
    """Where the old measurements were an artefact (issue 11 items 1-3), with the numbers."""
    L.append("Three of the study's earlier measurements measured something other than what "
             "their claim is about. The numbers below are from this run of the study "
             "(mean ± sd over seeds); the findings above test the corrected measurements.\n")
    items = []
    for name, rs in g.items():
        if rs[0].dim != 2 or rs[0].checkpoint("end").kernel_split is None:
            continue
        ep = rs[0].checkpoint("end").epoch
        items.append(
            f"{name}, epoch {ep}: {mean_sd_share(over_seeds(rs, 'end', 'confusion', 'neighbour_below'))}"
            f" of neighbour pairs have gradient cosine < -0.5, "
            f"{mean_sd_share(over_seeds(rs, 'end', 'confusion_residual', 'neighbour_below'))} have "
            f"residual cosine < -0.5 and "
            f"{mean_sd_share(over_seeds(rs, 'end', 'confusion_kernel', 'neighbour_below'))} have kernel "
            f"similarity < -0.5; Pearson(gradient cosine, residual cosine) = "
            f"{_ms(over_seeds(rs, 'end', 'kernel_split', 'pearson_residual'))}, against the "
            f"kernel similarity {_ms(over_seeds(rs, 'end', 'kernel_split', 'pearson_kernel'))}")
    if items:
        L.append("**1. Confusion in 2D is set by the residuals, not the regions.** With three "
                 "output channels `g_i = (2/C) J_i^T r_i` and neighbours share nearly the same "
                 "Jacobian, so the gradient cosine follows the residual cosine:\n")
        L += [f"- {x}." for x in items]
        weak = [name for name, rs in g.items() if rs[0].dim == 2
                and rs[0].checkpoint("end").kernel_split is not None
                and np.nanmean([np.nan if v is None else v for v in
                                over_seeds(rs, "end", "kernel_split", "pearson_residual")]) < 0.9]
        if weak:
            L.append("\nThe exception: " + ", ".join(
                f"{n} at the end (mean loss {_ms([r.mean_loss[-1] for r in g[n]])})"
                for n in weak) + ", where the image is nearly fitted: there the gradient cosine "
                "follows the residual cosine less (Pearson below 0.9) and the kernel part more.")
        L.append("\nThe kernel similarity `s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)` of neighbours "
                 "is positive: the regions make neighbours' kernels alike, but they cannot make "
                 "neighbours conflict. The paper's '% of neighbour pairs below -0.5' row is a "
                 "statement about the residuals; the region mechanism is tested on the kernel "
                 "part (section *Kernel against residual*).\n")
    items = []
    for name, rs in g.items():
        if rs[0].checkpoint("early").adam_step is None:
            continue
        from ..claims import record_steps
        ep = rs[0].checkpoint("early").epoch
        items.append(
            f"{name}, epoch {ep}: the full-batch GD prediction against the change over the next "
            f"{plural(record_steps(rs[0], 'early'), 'epoch')}, Spearman "
            f"{_ms(over_seeds(rs, 'early', 'agreement', 'spearman', 'rho'))}; Adam's own step "
            f"against its one-step change, Pearson "
            f"{_ms(over_seeds(rs, 'early', 'adam_step', 'pearson'))}; cosine of Adam's update "
            f"with the negative full-batch gradient "
            f"{_ms(over_seeds(rs, 'early', 'adam_step', 'cos_full_gradient'))} (with the "
            f"batch's gradient {_ms(over_seeds(rs, 'early', 'adam_step', 'cos_batch_gradient'))})")
    if items:
        L.append("**2. The old first-order prediction tested 'Adam is not GD', not the theory.** "
                 "It predicted a full-batch GD step while training takes Adam steps:\n")
        L += [f"- {x}." for x in items]
        L.append("\nWith the step the run really takes the first-order formula is exact to "
                 "rounding; the theory is tested on the `gd` runs and on Adam's own step "
                 "(section *The first-order prediction with the run's own step*).\n")
    items = []
    for name, rs in g.items():
        c = rs[0].checkpoint("early")
        if "rate" not in c.speeds:
            continue
        worse = [float(np.mean(np.asarray(r.checkpoint("early").speeds["rate"]) < 0))
                 for r in rs if "rate" in r.checkpoint("early").speeds]
        lw = next((x.learning_window for x in rs[0].checkpoints if x.learning_window), None)
        items.append(f"{name}: after epoch {c.epoch} (mean loss {_fmt(c.mean_loss)}) "
                     f"{mean_sd_share(worse)} of the samples get worse over the fixed {c.window}-epoch "
                     "window; learning-phase window "
                     + (f"epochs {lw[0]}-{lw[1]}" if lw else "none (the loss never falls below "
                                                           "the constant predictor's)"))
    if items:
        L.append("**3. The per-sample speed was taken on plateaus.** The fixed window after the "
                 "early checkpoint can lie where the network predicts the mean and the "
                 "per-sample rate is a random walk:\n")
        L += [f"- {x}." for x in items]
        L.append("\nThe coupling findings are therefore also tested in the learning-phase window "
                 "chosen from the loss curve by a rule fixed in advance, with partial "
                 "correlations controlling for each sample's own loss and residual.\n")


@section("Kernel against residual", ("kernel_split", "kernel split"))
def kernel_section(L, results, g, figs, found):
    """The pair quantities split into kernel and residual parts."""
    L.append("Every pair quantity split (`regions.study.ntk.kernel_split`): with `K_ij = J_i "
             "J_j^T` the pair's NTK block, `G_ij = (4/C^2) r_i^T K_ij r_j`; the kernel part is "
             "`s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`, the residual part `cos(r_i, r_j)`, and "
             "their product is the gradient cosine when `K_ij ~ (tr K_ij / C) I` (`anisotropy` "
             "is how far from that the blocks are; 0 for one channel). Shares of 3x3-patch "
             "(3-window in 1D) pairs below -0.5 and the pair mechanism (Spearman of |part| "
             "against the pair's Hamming distance) for each part; mean ± sd over seeds.\n")
    rows = []
    for name, rs, which, c in at_checkpoints(g, "kernel_split"):
        rows.append([
            name, c.epoch,
            mean_sd_share(over_seeds(rs, which, "confusion", "neighbour_below")),
            mean_sd_share(over_seeds(rs, which, "confusion_kernel", "neighbour_below")),
            mean_sd_share(over_seeds(rs, which, "confusion_residual", "neighbour_below")),
            mean_sd_share(over_seeds(rs, which, "confusion_product", "neighbour_below")),
            _ms(over_seeds(rs, which, "confusion_kernel", "neighbour_mean")),
            _ms(over_seeds(rs, which, "kernel_split", "pearson_residual")),
            _ms(over_seeds(rs, which, "kernel_split", "pearson_kernel")),
            _ms(over_seeds(rs, which, "kernel_split", "pearson_product")),
            _ms(over_seeds(rs, which, "kernel_split", "anisotropy")),
            _ms(over_seeds(rs, which, "pairs", "abs_cos_vs_hamming", "rho")),
            _ms(over_seeds(rs, which, "pairs_kernel", "abs_cos_vs_hamming", "rho")),
            _ms(over_seeds(rs, which, "pairs_residual", "abs_cos_vs_hamming", "rho"))])
    L.append(_table(["run", "epoch", "< -0.5: gradient", "< -0.5: kernel", "< -0.5: residual",
                     "< -0.5: product", "mean s_ij", "Pearson(grad, residual)",
                     "Pearson(grad, kernel)", "Pearson(grad, product)", "anisotropy",
                     "rho(|grad cos|, Hamming)", "rho(|s_ij|, Hamming)",
                     "rho(|residual cos|, Hamming)"], rows))
    L.append("\nA '-' in the residual columns of 1D runs: with one output channel the residual "
             "cosine is +-1, so it has no spread to correlate; the product is the gradient "
             "cosine exactly.\n")


@section("The first-order prediction with the run's own step", ("prediction", "prediction"))
def first_order_section(L, results, g, figs, found):
    """The first-order prediction with the step each run really takes."""
    from ..claims import band_prediction_miss, is_gd, record_steps

    rows = []
    for name, rs, which, c in at_checkpoints(g, "agreement"):
        if not is_gd(rs[0]):
            continue
        sp = c.spectrum
        rows.append([name, c.epoch, record_steps(rs[0], which),
                     _ms(over_seeds(rs, which, "agreement", "pearson")),
                     _ms(over_seeds(rs, which, "agreement", "spearman", "rho")),
                     c.window, _ms(over_seeds(rs, which, "agreement_window", "spearman",
                                               "rho")),
                     "-" if sp is None or sp.horizon is None else sp.horizon,
                     _ms(over_seeds(rs, which, "spectrum", "prediction_error_end")),
                     _ms([band_prediction_miss(r, which) for r in rs]),
                     _ms(over_seeds(rs, which, "spectrum", "sharpness"))])
    strided = [name for name, rs in g.items() if is_gd(rs[0])
               and any(c.spectrum is not None and (c.spectrum.stride or 1) > 1
                       for c in rs[0].checkpoints)]
    if strided:
        L.append(f"The spectral prediction needs every sample in the kernel; for "
                 f"{', '.join(strided)} the kernel was taken on a strided subgrid (more samples "
                 "than the job's `ntk_max_samples`), so there is none and its findings are "
                 "missing.\n")
    if rows:
        L.append("**Full-batch gradient descent** (`gd` runs), where the first-order theory "
                 "applies: the per-sample prediction `-(lr/N) sum_j G_ij` against the change "
                 "over the next record (its length in GD steps is stated) and its relative rate "
                 "against the rate over the coupling window; the kernel's spectral prediction "
                 "(each eigen-component of the residual times `(1 - step_scale lambda_k)` per "
                 "step) against the measured residual over the horizon to the next analysed "
                 "checkpoint: relative error `|r_pred - r| / |r_start - r|` and the largest "
                 "per-band miss of the residual energy ratio. Sharpness above 2 means the "
                 "linearised GD diverges along the top eigenvector (the run is at the edge of "
                 "stability) and the prediction cannot hold.\n")
        L.append(_table(["run", "epoch", "record (steps)", "Pearson(pred, change)",
                         "Spearman(pred, change)", "window (steps)",
                         "Spearman(pred rate, window rate)", "horizon (steps)",
                         "spectral error", "max band miss", "sharpness"], rows))
        L.append("")
    rows = []
    from regions.study.ntk import PAIR_CLASSES
    for name, rs, which, c in at_checkpoints(g, "adam_step"):
        a = c.adam_step
        rows.append([name, c.epoch,
                     _ms(over_seeds(rs, which, "adam_step", "pearson")),
                     _ms(over_seeds(rs, which, "agreement", "spearman", "rho")),
                     _ms(over_seeds(rs, which, "adam_step", "cos_full_gradient")),
                     mean_sd_share(over_seeds(rs, which, "adam_step", "term_share",
                                           "momentum"))]
                    + [f"{a.pair_count.get(k, 0)}: "
                       f"{mean_sd_share(over_seeds(rs, which, 'adam_step', 'term_share', k))}, "
                       f"{_ms(over_seeds(rs, which, 'adam_step', 'mean_abs_pair', k))}"
                       for k in PAIR_CLASSES])
    if rows:
        L.append("**Adam**, with the optimiser's own step: the state is rebuilt over "
                 "warm-up minibatches, then one step's `dtheta` (Adam's preconditioned update) "
                 "gives the prediction `g_i . dtheta`, split into the momentum term and, per "
                 "batch sample j, `c g_i^T D g_j` by where j lies relative to i. Per class: "
                 "pairs (first seed), the class's share of the summed |terms|, and the mean "
                 "|term| of one pair; the summed shares grow with the number of pairs, the "
                 "per-pair mean is the coupling of one pair. 'GD-direction Spearman' is the old "
                 "prediction, for comparison.\n")
        L.append(_table(["run", "epoch", "Pearson(own step, change)", "GD-direction Spearman",
                         "cos(update, -full grad)", "momentum share"]
                        + [f"{k.replace('_', ' ')}: pairs: share, mean |term|"
                           for k in PAIR_CLASSES], rows))
        L.append("")


@section("Spectral coupling: the kernel's spectrum", ("spectral_coupling", "spectral coupling"))
def spectrum_section(L, results, g, figs, found):
    """The trace NTK's spectrum against the region structure."""
    from ..claims import top_band_gain

    L.append("The trace NTK `Theta_ij = tr K_ij` over the samples (a strided subgrid above "
             "the job's `ntk_max_samples`), its eigen-decomposition, and the residual in its "
             "eigenbasis. `band gain`: mean Rayleigh quotient of Theta over the unit Fourier "
             "vectors of a band over the mean eigenvalue (> 1: the kernel learns that band "
             "faster than average); `freq. order`: Spearman of eigenvalue rank against "
             "eigenvector frequency (+1: strictly low to high); `residual alignment` (r^T Theta "
             "r / |r|^2 over the mean eigenvalue; < 1: what is left sits in slow directions); "
             "beside them the region structure: mean Hamming over 3x3 patches and distinct "
             "patterns per sample.\n")
    rows = []
    for name, rs in g.items():
        for c in rs[0].checkpoints:
            s = c.spectrum
            if s is None:
                continue
            i = rs[0].checkpoints.index(c)
            gains = ", ".join("-" if not np.isfinite(x) else _fmt(x) for x in s.band_gain)
            rows.append([name, c.epoch, _fmt(s.stride), _ms([lookup(r.checkpoints[i], "spectrum",
                                                           "effective_rank") for r in rs]),
                         _ms([lookup(r.checkpoints[i], "spectrum", "decay_exponent") for r in rs]),
                         _ms([lookup(r.checkpoints[i], "spectrum", "frequency_order")
                              for r in rs]),
                         gains, _ms([top_band_gain(r, r.checkpoints[i]) for r in rs]),
                         _ms([lookup(r.checkpoints[i], "spectrum", "residual_alignment")
                              for r in rs]),
                         _ms([r.checkpoints[i].hamming_patch for r in rs]),
                         _ms([r.checkpoints[i].n_patterns_sampled / r.n for r in rs])])
    L.append(_table(["run", "epoch", "stride", "effective rank", "decay exponent",
                     "freq. order", "band gains (first seed)", "top-band gain",
                     "residual alignment", "Hamming 3x3", "patterns / sample"], rows))
    L.append("")


@section("Gradient confusion and the old first-order prediction", ("confusion", "confusion"))
def gradient_section(L, results, g, figs, found):
    """Gradient confusion and the first-order prediction."""
    rows = []
    for name, rs, which, c in at_checkpoints(g):
        ag = measured_at(rs, which, lambda c: c.agreement)
        conf = measured_at(rs, which, lambda c: c.confusion)
        if not conf:
            continue
        shares = ag[0].term_share if ag else {}
        agw = measured_at(rs, which, lambda c: c.agreement_window)
        gd = measured_at(rs, which, lambda c: c.gd_step)
        rows.append([name, c.epoch,
                     _ms([x.neighbour_mean for x in conf]),
                     _ms([x.distant_mean for x in conf]),
                     mean_sd_share([x.neighbour_below for x in conf]),
                     mean_sd_share([x.distant_below for x in conf]),
                     _ms([a.spearman.rho for a in ag]) if ag else "-",
                     mean_sd_share([a.sign_agreement for a in ag]) if ag else "-",
                     _ms([a.spearman.rho for a in agw]) if agw else "-",
                     _ms([x.pearson for x in gd]) if gd else "-",
                     ", ".join(f"{k.replace('_', ' ')} {share_text(v)}"
                               for k, v in shares.items())])
    L.append(_table(["run", "epoch", "mean cos neighbours", "mean cos distant",
                     "neighbours < -0.5", "distant < -0.5",
                     "Spearman(predicted, observed d loss)", "same sign",
                     "Spearman(predicted rel. rate, window rate)", "GD-step check (Pearson)",
                     "share of |predicted| by term"], rows))
    L.append("\nThe full-gradient cosines, as in the paper (they follow the residuals: "
             "see *Kernel against residual*). The old prediction, kept for comparison, is one "
             "full-batch gradient-descent step on the mean loss, "
             "-(lr/N) sum_j G_ij, split by where j lies (same exact region, an adjacent region, "
             "elsewhere); the observed change is the loss change to the next record under the "
             "actual optimiser (Adam, mini-batches for 2D), so only ranks are compared; the "
             "window rate is -d log loss / d epoch over the coupling window against "
             "-predicted / loss. The GD-step check takes one real full-batch GD step from the "
             "checkpoint and compares the per-sample change with the prediction (it validates "
             "the formula, not the mechanism).\n")


@section("Spectral bias: residual energy per band", ("band_energy", "residual energy per band"))
def spectral_section(L, results, g, figs, found):
    """Residual energy per band."""
    rows = []
    for name, rs in g.items():
        be = rs[0].band_energy
        if be is None:
            continue
        labels = [f"({lo:g},{hi:g}]" if np.isfinite(hi) else f">{lo:g}" for lo, hi in be.bands]
        rows.append([name] + [f"{lab}: {_ms([r.band_energy.ratio[-1, b] for r in rs])}"
                              for b, lab in enumerate(labels)])
    if rows:
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        L.append(_table(["run"] + [f"band {i + 1} (end)" for i in range(width - 1)], rows))
        L.append("")


@section("The intervention: denser regions on one half of the image", ("intervention", "intervention effects"))
def intervention_section(L, results, g, figs, found):
    """The causal test: positional encoding on half of the image only."""
    table = effects_markdown(results)
    if not table:
        return False
    L.append("The regions are changed locally and the effect on convergence is measured, so "
             "that the coupling is tested causally. Treated arm: the positional encoding is "
             "fed only where x < 0.5 (`[x, y, m PE(x, y)]`, `m = 1` inside); control arm: the "
             "same network with `m = 0` everywhere, from the same initial weights (same input "
             "width). Each seed is one unit (its own target and initialisation, both arms "
             "paired). `density` is the manipulation check (more boundaries between "
             "neighbouring samples inside); `did` is the difference in differences of the log "
             "loss drop (treated minus control, inside minus outside), positive when the "
             "denser half converges faster; `spillover` is the outside half's change. The "
             "verdicts, with the rules and the false-discovery adjustment of every finding, "
             "are in the findings above (group \"the intervention\").\n")
    L.append("What this does and does not show: the treated arm differs from the control in "
             "its input features as well as in its region density, so a positive `did` says "
             "that adding the encoding speeds up the half that gets it, together with denser "
             "regions there; it does not separate the two. Each half's band energies are "
             "taken as if the half were periodic (leakage at the cut, shared by both arms, "
             "partly cancelled in the difference in differences).\n")
    L.append(table + "\n")
