"""Helpers every engine needs once: the progress bar, the thread pool, the
region cap, the slice into the domain's coordinates and the range check.

* :func:`progress_bar` opens a tqdm bar when asked to (``progress=None``:
  only when stderr is a terminal) and otherwise gives ``None``; tqdm is
  imported only when a bar is shown.
* :func:`thread_pool` is one process-wide pool of threads for the nogil
  kernels, grown when a caller asks for more threads than it has;
  :func:`split_rows` runs a row-range kernel over it.
* :func:`check_region_cap` raises :class:`regions.partition.TooManyRegions`
  with one message for every engine; :func:`check_layer_memory` raises
  :class:`MemoryBudgetExceeded` against the budget of :func:`memory_budget`.
* :func:`in_domain_coordinates` composes a domain's map ``x = origin + basis @ u``
  into a raw network's first layer: the one place the raw engines slice.
* :func:`check_value_range` bounds every layer's values over the domain by
  interval arithmetic and refuses a network whose values could overflow
  float64, before any engine runs.
* :func:`merge_max_runs` joins the consecutive pieces of a 1D partition whose
  patterns agree once the comparisons off a max's winning path are set to 0
  (:meth:`regions.Network.canonical`): the raw and encoded 1D engines.

Examples
--------
>>> progress_bar(False, desc="layers", unit="layer") is None
True
>>> list(thread_pool(2).map(abs, [-1, 2, -3]))
[1, 2, 3]
>>> check_region_cap(12, None, "after hidden layer 1 of 2")   # no cap: nothing happens
>>> check_region_cap(12, 12, "after hidden layer 1 of 2")     # at the cap: allowed
>>> check_region_cap(13, 12, "after hidden layer 1 of 2")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
regions.partition.TooManyRegions: the partition has at least 13 regions after hidden layer 1 of 2, ...

>>> import numpy as np
>>> from regions.domain import Interval
>>> from regions.network import as_network
>>> huge = as_network([(np.full((2, 1), 1e200), np.zeros(2)), (np.full((1, 2), 1e200), np.zeros(1))])
>>> check_value_range(huge, Interval(-1, 1))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: affine layer 2 of 2 (the output layer, from pair 1) could reach pre-activations of magnitude inf ...
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .partition import TooManyRegions

__all__ = ["cpu_model", "show_progress", "progress_bar", "stderr_is_terminal", "QUIET_ENV", "thread_pool",
           "process_pool", "split_rows", "check_region_cap",
           "in_domain_coordinates", "check_value_range", "MAX_VALUE", "memory_budget",
           "check_layer_memory", "MemoryBudgetExceeded", "merge_max_runs"]

# Largest magnitude a layer's values (and their slopes along the domain) may
# reach: the engines add and subtract a few of them (snap scales, interpolation
# t = z(u) / (z(u) - z(v)), affine fits), which stays below float64's 1.8e308.
MAX_VALUE = 1e300


#: Environment variable that turns the engines' default bars off
#: (``progress=None`` then means no bar); the study sets it in its workers
#: and while it runs jobs in-process, so that only its own progress shows.
QUIET_ENV = "REGIONS_QUIET_PROGRESS"


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (``False`` when it has no ``isatty`` or is closed)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def show_progress(progress) -> bool:
    """Whether to show a progress bar: ``progress`` itself, or for ``None``
    whether stderr is a terminal, unless the environment variable
    :data:`QUIET_ENV` is ``"1"``."""
    if progress is None:
        return os.environ.get(QUIET_ENV) != "1" and stderr_is_terminal()
    return bool(progress)


def progress_bar(progress, **tqdm_options):
    """A tqdm bar on stderr if :func:`show_progress` says so, else ``None``.

    ``tqdm_options`` go to ``tqdm.tqdm`` (``total``, ``desc``, ``unit`` ...).
    The caller updates and closes the bar.
    """
    if not show_progress(progress):
        return None
    from tqdm import tqdm

    tqdm_options.setdefault("file", sys.stderr)
    return tqdm(**tqdm_options)


_POOL = None
_POOL_LOCK = threading.Lock()


def thread_pool(threads: int) -> ThreadPoolExecutor:
    """The shared pool, with at least ``threads`` workers.

    A pool smaller than asked for is replaced by a larger one (the old one
    finishes the work it has and is left to the garbage collector), so
    callers asking for different counts share one pool.
    """
    global _POOL
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < threads:
            _POOL = ThreadPoolExecutor(threads)
        return _POOL


def split_rows(fn, rows, *args, threads=2, min_rows=2048):
    """Run ``fn(*args, start, stop)`` over ``threads`` ranges of ``0 .. rows`` in the
    shared pool (nogil kernels), or at once when ``rows < min_rows``; the results in
    order."""
    if threads <= 1 or rows < min_rows:
        return [fn(*args, 0, rows)]
    pool = thread_pool(threads)
    cuts = np.linspace(0, rows, threads + 1).astype(np.int64)
    futs = [pool.submit(fn, *args, int(cuts[i]), int(cuts[i + 1])) for i in range(threads)]
    return [f.result() for f in futs]


def _process_init():
    # Before torch or Numba load OpenMP in this fresh (spawned) worker: threads
    # wait passively, so the workers' pools do not spin against each other on
    # the same cores (measured on 2 busy cores: an Adam loop 6x and a 2D
    # partition 10x slower with the default spinning). A user's setting wins.
    # Ctrl-C reaches the whole process group: the workers ignore it and the
    # parent ends them, so the work stops at once.
    import signal

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # numpy's BLAS (kernel matrices, Gram products) would start one thread per
    # core in every worker: with two workers on two cores the measured NTK step
    # of the study ran 5-10x slower than single-threaded.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ[QUIET_ENV] = "1"  # no engine bars from the workers: the caller shows its own


def process_pool(workers: int = 2):
    """A ``ProcessPoolExecutor`` of ``workers`` fresh (spawned) processes set up to share
    the cores politely (see :func:`_process_init`); the caller shuts it down."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=int(workers), initializer=_process_init,
                               mp_context=multiprocessing.get_context("spawn"))


def check_region_cap(count: int, max_regions, where: str = "", unit: str = "regions") -> None:
    """Raise :class:`TooManyRegions` if ``count`` regions exceed ``max_regions``.

    ``count`` is a lower bound of the final number of regions (engines check
    after every layer); ``where`` says when it was reached (e.g. ``"after
    hidden layer 2 of 3"``) and goes into the message, as does ``unit``
    (``"pieces"`` for the 1D engines). ``max_regions=None`` means no cap.
    """
    if max_regions is not None and count > max_regions:
        where = f" {where}" if where else ""
        raise TooManyRegions(f"the partition has at least {count} {unit}{where}, more than "
                             f"max_regions={max_regions}; raise max_regions or shrink the domain")


MEMORY_SHARE = 0.8              # default budget: this share of the available memory ...
MEMORY_FLOOR = 2**30            # ... but not less than 1 GiB (or half the machine's memory)
_FALLBACK_AVAILABLE = 4 * 2**30  # when /proc/meminfo cannot be read


class MemoryBudgetExceeded(TooManyRegions):
    """A layer would need more memory than the budget allows.

    Raised before the layer is built, from its count pass; the message names
    the estimate, the budget and ``max_regions``. A subclass of
    :class:`TooManyRegions`, so code that catches that catches this too.
    """


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; the platform's string elsewhere):
    what bitwise and float32-sensitive reference files record as the machine they were
    written on."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_budget():
    """Default memory budget in bytes: ``MEMORY_SHARE`` (80%) of ``MemAvailable``
    in ``/proc/meminfo`` now, but at least ``MEMORY_FLOOR`` (1 GiB, or half of
    ``MemTotal`` on a smaller machine), so that a busy machine's momentary
    shortage does not stop a small enumeration; 80% of 4 GiB where
    ``/proc/meminfo`` cannot be read.

    Examples
    --------
    >>> memory_budget() >= min(MEMORY_FLOOR, 0.5 * _meminfo()["MemTotal"])
    True
    """
    info = _meminfo()
    if "MemAvailable" not in info:
        return int(MEMORY_SHARE * _FALLBACK_AVAILABLE)
    floor = min(MEMORY_FLOOR, 0.5 * info.get("MemTotal", 2 * MEMORY_FLOOR))
    return int(max(MEMORY_SHARE * info["MemAvailable"], floor))


def _meminfo():
    """``/proc/meminfo`` in bytes (``{}`` where it cannot be read)."""
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if fields and fields[0].isdigit():
                    out[key] = int(fields[0]) * 1024
    except OSError:
        pass
    return out


def check_layer_memory(estimate, budget, max_regions, where, size):
    """Raise :class:`MemoryBudgetExceeded` when a layer's estimated bytes exceed ``budget``.

    ``where`` names the layer, ``size`` what the count pass found (e.g.
    ``"1200 regions"``); both go into the message with the estimate, the
    budget and ``max_regions``.
    """
    if estimate > budget:
        raise MemoryBudgetExceeded(
            f"{where} would need about {estimate / 2**20:,.0f} MiB ({size}), more than the memory "
            f"budget of {budget / 2**20:,.0f} MiB (max_regions={max_regions}); pass a larger "
            "memory_budget= (bytes), a smaller max_regions, or shrink the domain or the network")


def in_domain_coordinates(network, domain):
    """The raw ``network`` as a function of the ``domain``'s own coordinate ``u``.

    The domain's map ``x = origin + basis @ u`` composed into the first layer
    (:meth:`regions.Network.sliced`); the network itself when the domain is
    the input space (no slice). The raw 1D and 2D engines and
    :meth:`regions.partition2d.Partition2D.locate` slice here and nowhere else;
    an encoded network is composed along its line by its own engine instead
    (the map goes into the encoding's phases, which are not a layer).
    """
    return network if domain.is_identity else network.sliced(domain.origin, domain.basis)


def _layer_name(network, l):
    """``"affine layer 2 of 3 (hidden, from layer 2 (Linear))"``: where a layer is."""
    n_layers = len(network.weights)
    role = "the output layer" if l == n_layers - 1 else "hidden"
    name = network.names[l] if l < len(network.names) else None
    origin = f", from {name}" if name is not None and name != "identity output" else ""
    return f"affine layer {l + 1} of {n_layers} ({role}{origin})"


def check_value_range(network, domain):
    """Refuse a network whose values over ``domain`` could overflow float64.

    Interval arithmetic, layer by layer, before any engine runs: the inputs
    are bounded over the domain's bounding box mapped into input coordinates
    (``|x_i| <= |origin_i| + sum_j |basis_ij| max |u_j|``; the features of an
    encoding by 1 for sin/cos and by ``|omega| max |x|`` for a raw projection),
    every layer's pre-activations by ``|W| max|a| + |b|`` and its activations
    by ``max(1, |slope|)`` times that; the slopes of the pre-activations along
    the domain's coordinates likewise (``|W| |dz/du|``, starting from
    ``|basis|``; and for an encoding the second derivative too, which its
    root isolation bounds). A bound that is not finite or exceeds
    :data:`MAX_VALUE` (1e300) raises ``ValueError`` naming the layer and the
    bound: the engines accept networks whose values stay below it, so that
    the sums and differences they form stay finite.
    """
    lo, hi = _domain_box(domain)
    u_max = np.maximum(np.abs(lo), np.abs(hi))
    basis = np.abs(domain.basis)
    with np.errstate(over="ignore", invalid="ignore"):
        x_max = np.abs(domain.origin) + basis @ u_max
        encoding = network.encoding
        if encoding is None:
            columns = [x_max[:, None], basis]
        else:
            kinds, omegas = encoding.feature_spec()
            omegas = np.abs(omegas)
            trig = kinds != 0
            slope = omegas @ basis
            columns = [np.where(trig, 1.0, omegas @ x_max)[:, None], slope,
                       np.where(trig[:, None], slope ** 2, 0.0)]
        # one product per layer: the value bound in column 0, then the derivatives'
        what = np.repeat(["pre-activations", "slopes along the domain",
                          "second derivatives along the domain"][:len(columns)],
                         [c.shape[1] for c in columns])
        bound = np.concatenate(columns, axis=1)
        for l, (W, b) in enumerate(zip(network.weights, network.biases)):
            bound = np.abs(W) @ bound
            bound[:, 0] += np.abs(b)
            worst = bound.max(axis=0)
            bad = np.flatnonzero(~(worst <= MAX_VALUE))
            if bad.size:
                raise ValueError(
                    f"{_layer_name(network, l)} could reach {what[bad[0]]} of magnitude "
                    f"{worst[bad[0]]:.3g} over the domain (interval arithmetic over its bounding "
                    f"box); the engines accept networks whose values and slopes stay within "
                    f"{MAX_VALUE:g} there, so that float64 sums and differences of them cannot "
                    "overflow. Scale the weights down or shrink the domain")
            if l < len(network.slopes):
                bound *= max(1.0, abs(float(network.slopes[l])))


def _domain_box(domain):
    """``(lo, hi)`` arrays of the domain's bounding box in its own coordinates."""
    bounds = np.asarray(domain.bounds, dtype=np.float64)
    half = bounds.shape[0] // 2
    return bounds[:half], bounds[half:]


def merge_max_runs(network, packed):
    """Pieces of a 1D partition, in order along the line, joined where only a max's
    losers changed order: ``(first, packed)``.

    ``packed`` (``(n, words)`` uint64) are the engine's patterns; each is made
    canonical (:meth:`regions.Network.canonical`: every comparison of a max over
    ``k > 2`` values that is off the winner's path set to 0) and each run of
    consecutive equal canonical patterns becomes one piece. ``first`` indexes the
    first piece of every run (its patterns are ``packed[first]`` after the
    canonical step, returned as ``packed``): the merged pieces run from
    ``points[first]`` to the next ``points[first]`` (or the end). Two adjacent
    pieces with one canonical pattern have the same argmax and the same other
    bits, so the output map is one affine map on their union. A network without
    :attr:`regions.Network.max_trees` gives every piece back unchanged.

    The encoded 2D engine applies the same rule to faces
    (:func:`regions.encoded.joins.join_max_faces`: canonical patterns, then the
    union of faces that share a boundary arc and a canonical pattern).
    """
    first = np.arange(len(packed))
    if network.max_trees is None or len(packed) < 2:
        return first, packed
    packed = network.canonical_packed(packed)
    first = np.flatnonzero(np.r_[True, np.any(packed[1:] != packed[:-1], axis=1)])
    return first, packed[first]
