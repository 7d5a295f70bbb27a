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
