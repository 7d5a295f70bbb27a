"""Test-session settings.

``pytest -n 2`` runs two worker processes on a 2-core machine, each with torch's
and Numba's OpenMP thread pools. OpenMP threads spin after each parallel
region by default; two processes' spinning threads then take the cores from
each other (measured: a short Adam loop 6x slower and a 2D partition 10x
slower under that load than with passive waiting). Passive waiting must be
chosen before torch or Numba load their OpenMP runtime, so it is set here, at
collection, unless the environment already chooses.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Property tests draw the same examples on every run (derandomize), so that a red
# CI run is a regression of the code and not a new draw; a failure hypothesis
# once found stays pinned as a plain test. To search for new counterexamples,
# run `REGIONS_HYPOTHESIS_PROFILE=explore python -m pytest tests/test_exact_reference.py
# tests/test_plane.py` (fresh random draws on each run).
from hypothesis import settings  # noqa: E402

settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("REGIONS_HYPOTHESIS_PROFILE", "default"))
