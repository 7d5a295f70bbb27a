"""The study's results schema: what one trained run measured, as typed records.

:func:`regions.study.analysis.analyse_run` builds one :class:`RunResult` per
(experiment, seed); the claims (:mod:`regions.study.claims`), the report
(:mod:`regions.study.report`) and the figures (:mod:`regions.study.figures`)
read only these records. Every field says what it holds in its metadata:
``doc`` (meaning), ``shape`` (array axes: ``N`` samples, ``K`` recorded epochs,
``P`` neighbour pairs, ``Q`` distant pairs, ``B`` frequency bands, ``d`` input
dimension, ``S`` samples of the kernel's eigendecomposition) and ``unit``.
Fields with a ``csv`` entry are the columns of
``data/summary.csv`` (:func:`csv_row`), written by iterating over the schema.

A run is stored as data, never as a pickle, by :mod:`regions.study.store`,
which walks these fields: the ``kind`` of each field says where its value goes
(``scalar``/``mapping``/``json`` to JSON, ``array``/``arrays`` to ``.npz``,
``record``/``records`` nested, ``partitions`` to ``regions.save`` files) and
what is checked when it is read back.

This module is over the study's ~400-line guide on purpose: it is one
thing, the schema, and is read as one document. Most of its lines are the
field declarations with their documentation; the records nest (a run holds
checkpoints, a checkpoint holds the pair, kernel and spectrum records), and
the field helpers and the CSV flattening they are declared for are what
make the records typed. Split by record, a reader checking what a key holds
would open several files for one nesting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SCHEMA_VERSION", "Correlation", "CouplingRow", "Confusion", "PairMechanism",
           "Agreement", "GDStep", "BandEnergy", "KernelSplit", "AdamStep", "Spectrum",
           "Intervention", "Checkpoint", "RunResult", "Finding",
           "group_by_name", "lookup", "csv_row", "csv_columns", "plain_value"]

#: Version of the schema and its stored layout; part of every job's
#: configuration key, so a change here makes old job files stale rather than misread.
SCHEMA_VERSION = 3


def _meta(doc, kind="scalar", *, shape=None, unit=None, dtype=None, finite=False, cls=None,
          csv=None, pick=None, optional=True):
    """Metadata of a schema field; see the module docstring."""
    return {"doc": doc, "kind": kind, "shape": shape, "unit": unit, "dtype": dtype,
            "finite": finite, "cls": cls, "csv": csv, "pick": pick, "optional": optional}


def scalar(doc, *, unit=None, dtype="float", csv=None, default=None, optional=True):
    """A number, string or bool (JSON)."""
    kw = {} if default is dataclasses.MISSING else {"default": default}
    return field(metadata=_meta(doc, unit=unit, dtype=dtype, csv=csv, optional=optional), **kw)


def required(doc, *, unit=None, dtype="float", csv=None):
    return field(metadata=_meta(doc, unit=unit, dtype=dtype, csv=csv, optional=False))


def array(doc, shape, *, unit=None, dtype="f", finite=False, optional=True):
    """A numpy array (``.npz``); ``dtype`` is the accepted numpy kinds."""
    return field(default=None, metadata=_meta(doc, "array", shape=shape, unit=unit, dtype=dtype,
                                              finite=finite, optional=optional))


def arrays(doc, shape, *, unit=None, dtype="f", csv=None):
    """A mapping name -> numpy array, every array of the same shape (``.npz``)."""
    return field(default_factory=dict, metadata=_meta(doc, "arrays", shape=shape, unit=unit,
                                                      dtype=dtype, csv=csv))


def mapping(doc, *, unit=None, csv=None, pick=None, dtype="float"):
    """A mapping name -> number (or None) (JSON)."""
    return field(default_factory=dict, metadata=_meta(doc, "mapping", unit=unit, csv=csv,
                                                      pick=pick, dtype=dtype))


def record(doc, cls, *, csv=None, pick=None):
    """A nested record (or None)."""
    return field(default=None, metadata=_meta(doc, "record", cls=cls, csv=csv, pick=pick))


def records(doc, cls):
    """A list of nested records."""
    return field(default_factory=list, metadata=_meta(doc, "records", cls=cls))


# ----------------------------------------------------------------------------- records
@dataclass(kw_only=True)
class Correlation:
    """Spearman's rho with a percentile-bootstrap interval
    (:func:`regions.study.coupling.spearman_ci`)."""

    rho: float = scalar("Spearman's rank correlation (NaN: fewer than 3 pairs or a constant side)")
    lo: float = scalar("lower bound of the 95% bootstrap interval")
    hi: float = scalar("upper bound of the 95% bootstrap interval")
    p: float = scalar("scipy's p-value of rho (no multiplicity control)")
    n: int = scalar("pairs used (finite on both sides)", unit="pairs", dtype="int")


@dataclass(kw_only=True)
class CouplingRow:
    """One (feature, speed) correlation at one checkpoint of one run: a row of
    ``data/coupling.csv``."""

    feature: str = required("region feature at the checkpoint (regions.study.features)",
                            dtype="str")
    speed: str = required("per-sample speed measure after the checkpoint (rate, drop, "
                          "epochs_to_eps, final_loss, run_*)", dtype="str")
    rho: float = scalar("Spearman's rho of feature and speed over the samples")
    lo: float = scalar("lower bound of the 95% bootstrap interval")
    hi: float = scalar("upper bound of the 95% bootstrap interval")
    p: float = scalar("scipy's p-value of rho")
    n: int = scalar("samples used", unit="samples", dtype="int")
    kind: str = scalar("'exact' or 'sampled' (see regions.study.features)", dtype="str",
                       default="")
    run: str = scalar("experiment name", dtype="str", default="")
    seed: int = scalar("training seed", dtype="int")
    epoch: int = scalar("the checkpoint's epoch", unit="epochs", dtype="int")


@dataclass(kw_only=True)
class Confusion:
    """Gradient confusion: cosines between per-sample loss gradients."""

    neighbour: np.ndarray = array("cosine of each 3x3-patch (3-window in 1D) pair's gradients "
                                  "(NaN for a zero gradient)", ("P",))
    distant: np.ndarray = array("cosine of each random distant pair's gradients", ("Q",))
    neighbour_below: float = scalar("share of neighbour pairs with cosine < -0.5",
                                    unit="fraction", csv="neighbour_below")
    distant_below: float = scalar("share of distant pairs with cosine < -0.5",
                                  unit="fraction", csv="distant_below")
    neighbour_mean: float = scalar("mean neighbour cosine", csv="neighbour_mean")
    distant_mean: float = scalar("mean distant cosine", csv="distant_mean")


@dataclass(kw_only=True)
class PairMechanism:
    """The mechanism at pair level, over the local (3x3-patch) pairs."""

    abs_cos_vs_hamming: Correlation = record("Spearman of |gradient cosine| against the "
                                             "pair's Hamming distance", Correlation)
    share_same_region: float = scalar("share of local pairs in one region", unit="fraction")
    abs_cos_same_region: float = scalar("mean |cos| of pairs in one region (None: no such "
                                        "pair)")
    abs_cos_other_region: float = scalar("mean |cos| of pairs in different regions")
    below_same_region: float = scalar("share of same-region pairs with cos < -0.5",
                                      unit="fraction")
    below_other_region: float = scalar("share of other-region pairs with cos < -0.5",
                                       unit="fraction")


@dataclass(kw_only=True)
class Agreement:
    """How a predicted per-sample loss change agrees with a measured one
    (:func:`regions.study.coupling.prediction_agreement`)."""

    spearman: Correlation = record("Spearman of predicted against measured", Correlation,
                                   csv="spearman", pick="rho")
    n: int = scalar("samples used", unit="samples", dtype="int")
    pearson: float = scalar("Pearson of predicted against measured")
    sign_agreement: float = scalar("share of samples whose predicted and measured changes "
                                   "have the same sign", unit="fraction", csv="sign_agreement")
    scale: float = scalar("least-squares factor measured ~ scale * predicted")
    term_share: dict = mapping("each term's share of the summed |terms| (self, same_region, "
                               "neighbour_region, far)", unit="fraction", csv="share_")
    term_spearman: dict = mapping("Spearman of each term alone against the measured change")


@dataclass(kw_only=True)
class GDStep:
    """One real full-batch gradient-descent step (float64) from the checkpoint
    against the first-order prediction (validates the Gram formula)."""

    spearman: float = scalar("Spearman of predicted against actual change")
    pearson: float = scalar("Pearson of predicted against actual change")
    scale: float = scalar("least-squares factor actual ~ scale * predicted (1 when exact)")


@dataclass(kw_only=True)
class BandEnergy:
    """The paper's residual energy ratio per frequency band over training
    (:func:`regions.study.bands.band_energy_from_run`)."""

    epochs: np.ndarray = array("epochs with recorded predictions", ("Kp",), unit="epochs",
                               dtype="iu", finite=True)
    ratio: np.ndarray = array("share of each band's target energy left in the residual "
                              "(1 = not learned; NaN where the target has no energy)",
                              ("Kp", "B"),
                              unit="fraction")
    bands: np.ndarray = array("band edges (lo, hi] in cycles over the grid; hi may be inf",
                              ("B", 2), unit="cycles")


@dataclass(kw_only=True)
class KernelSplit:
    """The gradient cosine split into its kernel and residual parts
    (:func:`regions.study.ntk.kernel_split`), over the same pairs as
    :class:`Confusion`.

    With ``g_i = (2/C) J_i^T r_i`` (``J_i`` the output Jacobian, ``r_i = f_i - y_i``)
    and ``K_ij = J_i J_j^T``: ``G_ij = (4/C^2) r_i^T K_ij r_j``. The kernel part
    is ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` (``Checkpoint.confusion_kernel``),
    the residual part ``cos(r_i, r_j)`` (``Checkpoint.confusion_residual``);
    when ``K_ij ~ (tr K_ij / C) I`` the gradient cosine is about their product
    (``Checkpoint.confusion_product``). The Pearson correlations here say how
    much of the gradient cosine each part carries."""

    pearson_residual: float = scalar("Pearson over the neighbour pairs of the gradient cosine "
                                     "against the residual cosine", csv="pearson_residual")
    pearson_kernel: float = scalar("Pearson over the neighbour pairs of the gradient cosine "
                                   "against the kernel similarity s_ij")
    pearson_product: float = scalar("Pearson over the neighbour pairs of the gradient cosine "
                                    "against s_ij * cos(r_i, r_j)", csv="pearson_product")
    distant_pearson_residual: float = scalar("the same over the distant pairs, residual cosine")
    distant_pearson_product: float = scalar("the same over the distant pairs, product")
    anisotropy: float = scalar("mean over the neighbour pairs of |K_ij - (tr K_ij / C) I|_F / "
                               "|K_ij|_F: how far the channels are from sharing one kernel "
                               "(0 for one channel; the error of the trace-NTK picture)",
                               unit="fraction", csv="anisotropy")


@dataclass(kw_only=True)
class AdamStep:
    """One Adam step from the checkpoint with Adam's own update, against its
    first-order prediction ``g_i . dtheta``, split by pair class
    (:func:`regions.study.ntk.adam_step_split`).

    The checkpoint holds no optimiser state: a float64 copy of the model is
    trained by ``torch.optim.Adam`` (the run's lr and batch size, torch's
    betas and eps) for ``warmup`` steps (the job's ``adam_warmup_steps``,
    default 20) on seeded minibatches, then the probed
    step is taken on the next batch ``B``. ``dtheta = -(lr / (1 - b1^t)) D *
    (b1 m_{t-1} + (1 - b1) mean_{j in B} g_j)`` with ``D = 1 / (sqrt(v_t /
    (1 - b2^t)) + eps)``, so the prediction is a momentum term plus, for each
    batch sample ``j``, ``c g_i^T D g_j`` (``c = -lr (1 - b1) / ((1 - b1^t) |B|)``):
    the terms split that sum by where ``j`` lies relative to ``i``. The
    summed shares are dominated by how many pairs a class has
    (``pair_count``); ``mean_abs_pair`` is the per-pair size."""

    warmup: int = scalar("Adam steps taken before the probed one (rebuilding the state)",
                         unit="steps", dtype="int")
    step: int = scalar("Adam's step count t at the probed step", unit="steps", dtype="int")
    batch_size: int = scalar("samples in the probed batch", unit="samples", dtype="int")
    pearson: float = scalar("Pearson of g_i . dtheta against the measured one-step change of "
                            "loss_i (float64), over all samples", csv="pearson")
    spearman: float = scalar("Spearman of the same")
    scale: float = scalar("least-squares factor actual ~ scale * predicted (1 when exact)")
    decomposition_error: float = scalar("max |sum of terms - g_i . dtheta| / max |g_i . dtheta| "
                                        "(rounding: the split is exact)", unit="fraction")
    update_error: float = scalar("max deviation of the update formula from the actual parameter "
                                 "change, relative to its largest entry (rounding)",
                                 unit="fraction")
    cos_batch_gradient: float = scalar("cosine of dtheta with the negative gradient of the "
                                       "probed batch's loss", csv="cos_batch_gradient")
    cos_full_gradient: float = scalar("cosine of dtheta with the negative full-batch gradient",
                                      csv="cos_full_gradient")
    predicted: np.ndarray = array("g_i . dtheta, the first-order change of loss_i", ("N",),
                                  unit="loss")
    actual: np.ndarray = array("measured change of loss_i over the probed step", ("N",),
                               unit="loss")
    terms: dict = arrays("the prediction split: momentum, self, same_region, neighbour_region, "
                         "far (they sum to predicted)", ("N",), unit="loss")
    term_share: dict = mapping("each term's share of the summed |terms| over the samples",
                               unit="fraction", csv="share_")
    pair_count: dict = mapping("pairs (i in all samples, j in the batch) per class: self, "
                               "same_region, neighbour_region, far", unit="pairs", dtype="int")
    mean_abs_pair: dict = mapping("mean |c g_i^T D g_j| per class, one pair's contribution to "
                                  "the predicted change (over up to 4096 pairs drawn uniformly "
                                  "from the class; None: no such pair)", unit="loss",
                                  csv="mean_abs_pair_")
    mean_abs_gram: dict = mapping("mean plain |G_ij| = |g_i . g_j| per class over the same "
                                  "pairs", unit="loss^2 / parameter^2")


@dataclass(kw_only=True)
class Spectrum:
    """The trace NTK ``Theta_ij = tr K_ij`` over the samples, its spectrum, the
    residual in its eigenbasis and, for full-batch GD runs, the per-band
    convergence it predicts (:mod:`regions.study.ntk`).

    ``Theta`` is decomposed with ``eigh`` (``O(S^3)``) on at most the job's
    ``ntk_max_samples`` samples (default 1024): larger grids use the strided
    subgrid ``rows`` (every ``stride``-th sample per axis; the eigenvalues then
    scale with ``S``, roughly ``S / N`` of the full kernel's). The prediction
    (only when ``S = N`` and the run is full-batch GD): the component of the
    residual along eigenvector ``u_k`` is multiplied by
    ``1 - step_scale lambda_k`` per step, ``step_scale = 2 lr / (N C^2)``
    (exact for one channel on the linearised model; for ``C`` channels it
    takes ``K_ij = Theta_ij / C I``, whose error is ``KernelSplit.anisotropy``),
    at every epoch of ``RunResult.band_energy`` up to the next analysed
    checkpoint (``horizon`` steps; one GD step per epoch)."""

    rows: np.ndarray = array("the samples of the kernel (flat grid indices)", ("S",),
                             dtype="iu")
    shape: list = scalar("grid shape of those samples", dtype="shape")
    stride: int = scalar("subgrid stride (1: all samples)", dtype="int")
    eigenvalues: np.ndarray = array("eigenvalues of Theta, descending", ("S",),
                                    unit="output^2 / parameter^2")
    frequencies: np.ndarray = array("mean radial frequency of each eigenvector on the grid "
                                    "(arbitrary for eigenvalues at rounding level)", ("S",),
                                    unit="cycles")
    residual_energy: np.ndarray = array("energy of the residual along each eigenvector, summed "
                                        "over channels", ("S",), unit="output^2")
    band_gain: np.ndarray = array("mean Rayleigh quotient of Theta over the unit Fourier "
                                  "vectors of each band, over the mean eigenvalue (> 1: the band "
                                  "is learnt faster than average; NaN: no bin on this grid)",
                                  ("B",), unit="fraction")
    effective_rank: float = scalar("(sum lambda)^2 / sum lambda^2", unit="eigenvectors",
                                   csv="effective_rank")
    rank_90: int = scalar("eigenvalues holding 90% of the trace", unit="eigenvectors",
                          dtype="int")
    decay_exponent: float = scalar("alpha of a least-squares fit lambda_k ~ k^-alpha over "
                                   "k = 1..S/4 (eigenvalues above ntk.ROUNDING_FLOOR * "
                                   "lambda_1 only)", csv="decay_exponent")
    top_share: float = scalar("share of the trace in the top 10 eigenvalues", unit="fraction")
    top_frequency: float = scalar("mean frequency of the top 10 eigenvectors", unit="cycles",
                                  csv="top_frequency")
    frequency_order: float = scalar("Spearman of eigenvalue rank against eigenvector frequency "
                                    "over the eigenvalues above ntk.ROUNDING_FLOOR * lambda_1 "
                                    "(+1: strictly low to high frequency)",
                                    csv="frequency_order")
    residual_top_share: float = scalar("share of the residual energy on the top 10% of the "
                                       "eigenvectors", unit="fraction", csv="residual_top_share")
    residual_alignment: float = scalar("(r^T Theta r / |r|^2) / mean eigenvalue: 1 like a "
                                       "random vector, < 1 the residual sits in the slow tail",
                                       csv="residual_alignment")
    horizon: int = scalar("GD steps predicted: to the next analysed checkpoint (None: no "
                          "prediction)", unit="steps", dtype="int")
    step_scale: float = scalar("2 lr / (N C^2)", unit="1 / kernel unit")
    sharpness: float = scalar("step_scale * lambda_max: above 2 the linearised GD diverges along "
                              "the top eigenvector (the real run is past the edge of stability), "
                              "and so does the prediction", csv="sharpness")
    predicted_band: np.ndarray = array("predicted residual energy ratio per band at the epochs of "
                                       "RunResult.band_energy (compare with its ratio); NaN "
                                       "outside (epoch, epoch + horizon]", ("Kp", "B"),
                                       unit="fraction")
    prediction_error: np.ndarray = array("|r_predicted - r| / |r_start - r| at the same epochs "
                                         "(0: exact; 1: no better than no change; NaN outside "
                                         "the horizon)", ("Kp",), unit="fraction")
    prediction_error_end: float = scalar("prediction_error at the end of the horizon",
                                         unit="fraction", csv="prediction_error")
    predicted_energy: np.ndarray = array("predicted residual energy along each eigenvector at the "
                                         "end of the horizon", ("S",), unit="output^2")
    measured_energy: np.ndarray = array("measured residual energy along each eigenvector (of the "
                                        "start's kernel) at the end of the horizon", ("S",),
                                        unit="output^2")


@dataclass(kw_only=True)
class Intervention:
    """One arm of the half-image positional-encoding intervention
    (:mod:`regions.study.intervention`): the per-area convergence and region
    density of the run. Area 0 is the *inside* (where the treated arm's
    encoding is on), area 1 the outside; both are column (or row) blocks of
    the grid. The effects over seeds and arms are
    :func:`regions.study.intervention.intervention_effects`."""

    arm: str = scalar("'treated' (encoding on inside) or 'control' (encoding nowhere, same "
                      "input width and initial weights)", dtype="str", csv="arm")
    pair: str = scalar("name shared by the two arms of one comparison", dtype="str", csv="pair")
    optimizer: str = scalar("the run's optimiser", dtype="str")
    L: int = scalar("frequencies of the half encoding", dtype="int")
    inside: str = scalar("the inside area, e.g. 'x < 0.5'", dtype="str")
    inside_share: float = scalar("share of the samples inside", unit="fraction")
    early_epoch: int = scalar("the record nearest intervention.EARLY_FRACTION of the epochs",
                              unit="epochs", dtype="int")
    epochs: np.ndarray = array("recorded epochs (the run's record_epochs)", ("K",),
                               unit="epochs", dtype="iu", finite=True)
    area_loss: np.ndarray = array("mean per-sample loss in each area (inside, outside)",
                                  ("K", 2), unit="loss")
    band_epochs: np.ndarray = array("epochs of band_ratio", ("Kp",), unit="epochs", dtype="iu",
                                    finite=True)
    band_ratio: np.ndarray = array("residual energy ratio per band of each area's sub-grid "
                                   "(inside, outside; regions.study.convergence."
                                   "band_residual_ratio on the area as its own grid)",
                                   ("Kp", 2, "Bi"), unit="fraction")
    bands: np.ndarray = array("band edges (lo, hi] in cycles over the area's sub-grid",
                              ("Bi", 2), unit="cycles")
    analysed_epochs: np.ndarray = array("the analysed checkpoints", ("Ka",), unit="epochs",
                                        dtype="iu", finite=True)
    area_patterns: np.ndarray = array("distinct activation patterns among each area's samples "
                                      "at each analysed checkpoint", ("Ka", 2), unit="patterns",
                                      dtype="iu")
    area_hamming: np.ndarray = array("mean Hamming distance between grid neighbours inside each "
                                     "area at each analysed checkpoint", ("Ka", 2),
                                     unit="neurons")


@dataclass(kw_only=True)
class Checkpoint:
    """Everything measured at one analysed checkpoint of a run."""

    epoch: int = required("the checkpoint's epoch", unit="epochs", dtype="int", csv="epoch")
    mean_loss: float = required("mean training loss (MSE) at the checkpoint", csv="mean_loss")
    n_regions: int = scalar("exact regions: sets of inputs with one activation pattern. Raw "
                            "2D: the partition's regions; raw 1D: its pieces (an interval "
                            "each); encoded 1D and 2D: the distinct patterns over the exact "
                            "pieces or faces (the encoding is periodic, so a pattern can recur "
                            "on several disjoint pieces); None without an exact partition",
                            dtype="int", csv="n_regions")
    n_pieces: int = scalar("exact pieces (connected intervals) of an encoded 1D partition, "
                           "faces (connected regions) of an encoded 2D one; n_pieces - "
                           "n_regions pieces repeat a pattern met on another piece (None for "
                           "raw runs: there pieces and regions coincide)",
                           dtype="int", csv="n_pieces")
    n_patterns_sampled: int = required("distinct activation patterns among the samples",
                                       dtype="int", csv="n_patterns_sampled")
    hamming_patch: float = required("mean Hamming distance over all pairs of 3x3 patches "
                                    "(3-windows in 1D), each pair weighted by the patches holding "
                                    "it", unit="neurons", csv="hamming_patch")
    hamming_neighbour: float = required("mean Hamming distance between grid neighbours",
                                        unit="neurons", csv="hamming_neighbour")
    crossings_neighbour: float = scalar("mean exact boundary crossings on a neighbour segment",
                                        unit="crossings", csv="crossings_neighbour")
    mean_chord: float = scalar("grid step / mean crossings per step: mean chord between "
                               "boundaries along grid lines", unit="input units",
                               csv="mean_chord")
    mean_dist_boundary: float = scalar("mean exact distance from a sample to its region's "
                                       "boundary", unit="input units", csv="mean_dist_boundary")
    mean_dist_paper: float = scalar("mean of the authors' min |z|/|W_l[k]|", unit="input units",
                                    csv="mean_dist_paper")
    mean_dist_layer1: float = scalar("mean distance to the nearest first-layer line",
                                     unit="input units")
    mean_dist_polygon: float = scalar("mean distance to the region clipped to the domain",
                                      unit="input units")
    paper_distance_ratio: dict = mapping("median exact local distance / the authors' distance, "
                                         "per deeper layer (l2, ...) and overall (all)",
                                         csv="paper_distance_ratio", pick="all")
    measure_all_median: float = scalar("median measure of all exact regions",
                                       unit="area or length")
    measure_hit_median: float = scalar("median measure of the regions holding a sample",
                                       unit="area or length")
    regions_with_samples: int = scalar("exact regions holding at least one sample", dtype="int")
    dead: dict = mapping("share of hidden neurons inactive on every sample: all, l1, l2, ...",
                         unit="fraction", csv="dead_")
    normal_cos: dict = mapping("mean pairwise cosine between the weight rows of each hidden "
                               "layer: l1, l2, ...", csv="normal_cos_")
    partition_seconds: float = scalar("time of the exact partition, the kernels already "
                                      "compiled (None: no partition ran)", unit="s",
                                      csv="partition_seconds")
    compile_seconds: float = scalar("time to compile the exact engine's kernels or load them from "
                                    "the cache, at the first partition of that engine in the "
                                    "worker process (None at later ones and where no engine "
                                    "runs)", unit="s", csv="compile_seconds")
    features: dict = arrays("per-sample region features (regions.study.features)", ("N",),
                            dtype="fiub")
    kinds: dict = mapping("'exact' or 'sampled' per feature", dtype="str")
    confusion: Confusion = record("gradient confusion", Confusion, csv="confusion_")
    pairs: PairMechanism = record("the mechanism at pair level", PairMechanism)
    predicted: dict = arrays("first-order (one full-batch GD step) per-sample loss change, "
                             "split by where the other sample lies: self, same_region, "
                             "neighbour_region, far", ("N",), unit="loss")
    observed_change: np.ndarray = array("measured per-sample loss change to the next record",
                                        ("N",), unit="loss")
    agreement: Agreement = record("predicted against observed change", Agreement, csv="pred_")
    gd_step: GDStep = record("one real GD step against the prediction", GDStep)
    confusion_kernel: Confusion = record("confusion rows on the kernel similarity s_ij = tr K_ij "
                                         "/ sqrt(tr K_ii tr K_jj) of the same pairs (KernelSplit)",
                                         Confusion, csv="kconf_")
    confusion_residual: Confusion = record("confusion rows on the residual cosine cos(r_i, r_j) "
                                           "of the same pairs", Confusion, csv="rconf_")
    confusion_product: Confusion = record("confusion rows on s_ij * cos(r_i, r_j) (no per-pair "
                                          "arrays: the product of the two above)", Confusion,
                                          csv="pconf_")
    pairs_kernel: PairMechanism = record("the pair mechanism on |s_ij| instead of |gradient "
                                         "cosine|", PairMechanism)
    pairs_residual: PairMechanism = record("the pair mechanism on |cos(r_i, r_j)|",
                                           PairMechanism)
    kernel_split: KernelSplit = record("how the gradient cosine splits into kernel and residual",
                                       KernelSplit, csv="ksplit_")
    adam_step: AdamStep = record("one Adam step with Adam's own update against its prediction, "
                                 "split by pair class (Adam runs only)", AdamStep, csv="adam_")
    spectrum: Spectrum = record("the trace NTK's spectrum and its GD prediction", Spectrum,
                                csv="ntk_")
    speeds: dict = arrays("per-sample speed after the checkpoint: rate (-d log loss / d "
                          "epoch), drop, epochs_to_eps; final_loss at the end; run_* from init",
                          ("N",))
    window: int = scalar("length of the coupling window", unit="epochs", dtype="int")
    agreement_window: Agreement = record("predicted relative rate against the window rate",
                                         Agreement)
    coupling: list = records("every (feature, speed) correlation", CouplingRow)
    learning_window: list = scalar("(start, stop) epochs of the run's learning-phase window "
                                   "(regions.study.convergence.learning_window) when the lp_* "
                                   "speeds and coupling rows of this checkpoint are taken over "
                                   "it; None otherwise", dtype="pair")

    def rho(self, feature, speed):
        """The coupling row of ``(feature, speed)``, or None."""
        return next((r for r in self.coupling if r.feature == feature and r.speed == speed),
                    None)


@dataclass(kw_only=True)
class RunResult:
    """One trained (experiment, seed) run and everything measured on it."""

    name: str = required("experiment name", dtype="str", csv="run")
    seed: int = required("training seed", dtype="int", csv="seed")
    dim: int = required("input dimension of the signal (1 or 2)", dtype="int")
    n: int = required("number of samples", unit="samples", dtype="int", csv="n")
    grid_shape: list = scalar("sample grid shape, (n,) or (H, W)", dtype="shape")
    coord_range: list = scalar("(lo, hi) of the coordinates", dtype="pair")
    coords: np.ndarray = array("sample coordinates, row-major grid order (as trained)",
                               ("N", "d"), unit="input units", finite=True, optional=False)
    encoding: str = scalar("positional-encoding level L, an encoding class name, or None (raw)",
                           dtype="str")
    config: dict = field(default_factory=dict,
                         metadata=_meta("the training configuration (TrainConfig.to_dict "
                                        "without the encoding)", "json"))
    record_epochs: np.ndarray = array("recorded epochs", ("K",), unit="epochs", dtype="iu",
                                      finite=True, optional=False)
    mean_loss: np.ndarray = array("mean training loss per record", ("K",), unit="loss",
                                  optional=False)
    train_seconds: float = scalar("training time", unit="s")
    seconds: float = scalar("training and analysis time", unit="s")
    speeds: dict = arrays("whole-run per-sample speed: epochs_to_eps, auc, final_loss", ("N",))
    censored: float = scalar("share of samples that never reach eps * initial loss",
                             unit="fraction")
    band_energy: BandEnergy = record("residual energy ratio per band over training", BandEnergy)
    intervention: Intervention = record("per-area measures of an intervention arm "
                                        "(regions.study.intervention); None for other runs",
                                        Intervention, csv="int_")
    checkpoints: list = records("the analysed checkpoints, in epoch order", Checkpoint)
    partitions: dict = field(default_factory=dict, metadata=_meta(
        "exact partition per analysed epoch (regions Partition objects; saved as regions "
        "files beside the job, loaded with regions.load); none for encoded 2D runs",
        "partitions"))
    notes: list = field(default_factory=list, metadata=_meta(
        "notes on what was skipped or failed", dtype="strings", optional=False))

    def checkpoint(self, which):
        """A checkpoint: 'init', 'early' (the second analysed), 'end' or an index."""
        cps = self.checkpoints
        if which == "init":
            return cps[0]
        if which == "end":
            return cps[-1]
        if which == "early":
            return cps[1] if len(cps) > 2 else cps[0]
        return cps[which]

    def high_band(self):
        """Index of the highest band where the target has energy, or None."""
        if self.band_energy is None:
            return None
        ok = np.flatnonzero(np.all(np.isfinite(self.band_energy.ratio), axis=0))
        return int(ok[-1]) if ok.size else None

    def high_band_ratio_end(self):
        """Residual energy ratio of the highest band at the last record, or None."""
        b = self.high_band()
        return None if b is None else float(self.band_energy.ratio[-1, b])


@dataclass(kw_only=True)
class Finding:
    """One claim of the paper checked on the results: a row of ``data/findings.csv``.

    The verdict follows from ``null``, ``alternative``, ``estimate``,
    ``ci_low``, ``ci_high``, ``p_adjusted`` and ``n_units`` alone, by the
    rules of :data:`regions.study.stats.RULES`.
    """

    group: str = required("the part of the study the claim belongs to "
                          "(regions.study.claims.GROUPS)", dtype="str")
    claim: str = required("the claim, with its operationalisation", dtype="str")
    run: str = required("the experiment(s) it is measured on", dtype="str")
    statistic: str = required("the per-run statistic pooled over runs", dtype="str")
    null: float = required("the threshold the claim puts the statistic above or below "
                           "(original scale)")
    alternative: str = required("'greater' or 'less': the claimed side of the threshold",
                                dtype="str")
    estimate: float = required("pooled estimate over the runs (the effect size, in the "
                               "statistic's units)")
    ci_low: float = required("lower bound of the interval over runs (NaN for one run)")
    ci_high: float = required("upper bound of the interval over runs (NaN for one run)")
    n_units: int = required("runs (seed x target) pooled", dtype="int")
    method: str = required("how the runs were pooled", dtype="str")
    p_value: float = required("two-sided p-value of the pooled statistic against the threshold")
    p_adjusted: float = required("p-value adjusted over the whole findings table "
                                 "(regions.study.stats.FDR_METHOD)")
    verdict: str = required("'holds', 'does not hold', 'inconclusive' or 'not tested' "
                            "(regions.study.stats.RULES)", dtype="str")
    rule: int = required("the number (from 1) of the rule of regions.study.stats.RULES that "
                         "gave the verdict", dtype="int")
    values: str = required("the per-run values, 'unit=value' separated by '; '", dtype="str")
    paper: str = required("what the paper reports", dtype="str")
    measured: str = required("what was measured here, in words", dtype="str")


def group_by_name(results):
    """Runs grouped by experiment name, in first-appearance order."""
    out = {}
    for r in results:
        out.setdefault(r.name, []).append(r)
    return out


def lookup(obj, *path):
    """The value at an attribute path of a record (``lookup(c, "agreement",
    "spearman", "rho")`` is ``c.agreement.spearman.rho``; a mapping's entry is
    taken by key), None where any step is None (not measured)."""
    for k in path:
        if obj is None:
            return None
        obj = obj.get(k) if isinstance(obj, dict) else getattr(obj, k)
    return obj


# ----------------------------------------------------------------------------- CSV
def plain_value(v):
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def _csv_items(obj, prefix=""):
    for f in dataclasses.fields(obj):
        col = f.metadata.get("csv")
        if col is None:
            continue
        v = getattr(obj, f.name)
        if v is None:
            continue
        pick = f.metadata.get("pick")
        if pick is not None:
            v = v.get(pick) if isinstance(v, dict) else getattr(v, pick)
            yield prefix + col, plain_value(v)
        elif dataclasses.is_dataclass(v):
            yield from _csv_items(v, prefix + col)
        elif isinstance(v, dict):
            for k, x in v.items():
                yield prefix + col + str(k), plain_value(x)
        else:
            yield prefix + col, plain_value(v)


def csv_row(*objs):
    """One CSV row (dict) from records: the fields whose metadata has ``csv``,
    nested records and mappings flattened with their column prefix."""
    row = {}
    for obj in objs:
        row.update(_csv_items(obj))
    return row


def csv_columns(cls):
    """The plain column names of a flat record class (e.g. Finding, CouplingRow)."""
    return [f.name for f in dataclasses.fields(cls)]
