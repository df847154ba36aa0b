"""tilegraph: kernels and a compiler for transformer ops on Tenstorrent hardware.

Imports are `from tilegraph.graph import Graph`, `from tilegraph.ops import REGISTRY`, ...
"""

from tilegraph.errors import (  # noqa: F401
    DataError,
    DeviceError,
    KernelError,
    ShapeError,
    ShardingError,
    SpecError,
    TilegraphError,
)

__version__ = "0.1.0"
