"""Helpers every engine needs once: the progress bar, the thread pool and the
region cap.

* :func:`progress_bar` opens a tqdm bar when asked to (``progress=None``:
  only when stderr is a terminal) and otherwise gives ``None``; tqdm is
  imported only when a bar is shown.
* :func:`thread_pool` is one process-wide pool of threads for the nogil
  kernels, grown when a caller asks for more threads than it has.
* :func:`check_region_cap` raises :class:`regions.partition.TooManyRegions`
  with one message for every engine.

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
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from .partition import TooManyRegions

__all__ = ["show_progress", "progress_bar", "thread_pool", "check_region_cap"]


def show_progress(progress) -> bool:
    """Whether to show a progress bar: ``progress`` itself, or for ``None``
    whether stderr is a terminal (``False`` when stderr has no ``isatty`` or
    is closed)."""
    if progress is None:
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
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
