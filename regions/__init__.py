"""regions: exact linear regions of small ReLU networks in 1D and 2D.

The public API is imported lazily: ``import regions`` is cheap, and each
name loads its module (and compiles nothing) on first use.
"""
from importlib import import_module

__version__ = "0.1.0"

# The submodule regions.partition (the Partition classes) shares its name with
# the function regions.partition. Load the submodule first, so that importing
# it later never rebinds the name; then bind the function.
from . import partition as _partition_module  # noqa: F401,E402
from .api import TooManyRegions, partition  # noqa: E402

# public name -> module that defines it
_API = {
    "Partition": "regions.partition",
    "MemoryBudgetExceeded": "regions.api",
    "Network": "regions.network",
    "as_network": "regions.network",
    "Domain": "regions.domain",
    "Interval": "regions.domain",
    "Box": "regions.domain",
    "PolygonDomain": "regions.domain",
    "Segment": "regions.domain",
    "Plane": "regions.domain",
    "load": "regions.io",
    "save": "regions.io",
    "Encoding": "regions.encoding",
    "PositionalEncoding": "regions.encoding",
    "RandomFourierFeatures": "regions.encoding",
    "sampled_patterns": "regions.sampling",
    "grid_crossings": "regions.encoded",
    "partition_encoded_segment": "regions.encoded",
    "partition_encoded_plane": "regions.encoded",
    "sample_faces": "regions.encoded",
    "encoded": "regions.encoded",
    "segment_crossings": "regions.geometry",
    "boundary_distances": "regions.geometry",
    "interval_adjacency": "regions.geometry",
    "geometry": "regions.geometry",
    "plot": "regions.plot",
    "study": "regions.study",
}

__all__ = sorted(list(_API) + ["partition", "TooManyRegions"])


def __getattr__(name):
    if name in _API:
        module = import_module(_API[name])
        value = module if module.__name__ == f"regions.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regions' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
