"""What a person running the study sees while it runs.

One :class:`StudyProgress` per study: in a terminal, one tqdm bar over the
jobs (jobs done, elapsed, an estimate of what is left) with one line per
finished job written above it; elsewhere (``nohup``, output redirected, a
notebook) plain lines: one per finished job and, between them, a line every
:data:`HEARTBEAT_SECONDS` saying how far the study is. The engines' own bars
are off while the study runs (in its workers and in-process), so that only
this progress shows.

Examples
--------
>>> said = []
>>> p = StudyProgress(said.append, total=2, clock=iter([0.0, 10.0, 40.0, 45.0]).__next__)
>>> p.job_done("2d-raw seed 0 done in 9.8 s")
>>> p.tick()          # 30 s after the last line: a heartbeat
>>> p.close()
>>> said[0]
'[1/2] 2d-raw seed 0 done in 9.8 s'
>>> said[1]
'study: 1 of 2 jobs done, 40 s elapsed, about 40 s left'
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from .._shared import QUIET_ENV, stderr_is_terminal

__all__ = ["StudyProgress", "study_progress", "quiet_engines", "HEARTBEAT_SECONDS"]

#: Seconds between two plain progress lines when nothing else was said.
HEARTBEAT_SECONDS = 30.0


def _seconds(s):
    return f"{s:.0f} s" if s < 600 else f"{s / 60:.0f} min"


class StudyProgress:
    """Progress of ``total`` jobs, said through ``say(line)``.

    Parameters
    ----------
    say : callable or None
        Receives each line; ``None`` says nothing.
    total : int
        Jobs to run (reused ones are not counted).
    bar : bool
        Draw one tqdm bar on stderr and write the lines above it (a terminal);
        otherwise heartbeat lines every ``heartbeat`` seconds.
    heartbeat : float
    clock : callable
        Seconds (``time.perf_counter``; tests pass their own).
    """

    def __init__(self, say, total, bar=False, heartbeat=HEARTBEAT_SECONDS,
                 clock=time.perf_counter):
        self.total, self.done, self._clock, self._heartbeat = int(total), 0, clock, heartbeat
        self._t0 = self._last = clock()
        self._bar = None
        if say is not None and bar and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="study", unit="job", file=sys.stderr,
                             bar_format="{desc}: {n}/{total} jobs |{bar}| {elapsed} elapsed, "
                                        "~{remaining} left")
            say = self._bar.write
        self._say = say

    def say(self, line):
        """Say one line now (and restart the heartbeat's clock)."""
        if self._say is not None:
            self._say(line)
        self._last = self._clock()

    def job_done(self, line):
        """A job finished: count it and say ``[k/total] line``."""
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {line}")
        if self._bar is not None:
            self._bar.update(1)

    def tick(self):
        """Called often while jobs run: a heartbeat line if nothing was said
        for ``heartbeat`` seconds (with a bar: redraw it, it shows the time)."""
        if self._bar is not None:
            self._bar.refresh()                      # the elapsed time moves on
            return
        now = self._clock()
        if self._say is None or now - self._last < self._heartbeat:
            return
        elapsed = now - self._t0
        left = (f", about {_seconds(elapsed / self.done * (self.total - self.done))} left"
                if self.done else ", the first job is still running")
        self.say(f"study: {self.done} of {self.total} jobs done, {_seconds(elapsed)} elapsed{left}")

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def study_progress(progress, total):
    """The :class:`StudyProgress` for ``run_study``'s ``progress`` argument:
    ``False`` silent; a callable gets plain lines (with heartbeats); ``True``
    or ``None``: a bar when stderr is a terminal, plain lines on stderr
    otherwise."""
    if progress is False:
        return StudyProgress(None, total)
    if callable(progress):
        return StudyProgress(progress, total)
    if progress is not None and progress is not True:
        raise ValueError(f"progress must be True, False, None or a callable, got {progress!r}")
    return StudyProgress(lambda line: print(line, file=sys.stderr, flush=True), total,
                         bar=stderr_is_terminal())


@contextmanager
def quiet_engines():
    """Turn the engines' default bars off while the study runs in this process."""
    before = os.environ.get(QUIET_ENV)
    os.environ[QUIET_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = before
