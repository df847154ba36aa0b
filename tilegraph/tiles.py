"""The one table of tile and element sizes: every pass, builder and backend that pads to tiles or counts bytes
reads it from here (the graph's memory plan, the program descriptions, the kernel host helpers).

A tile is 32x32 elements (four 16x16 faces). bfloat8_b stores a tile as 1024 one-byte mantissas plus 64 shared
exponents (one per 16-element face row): 1088 bytes, i.e. 1088/1024 bytes per element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TILE = 32  # tile edge (elements)
FACE = 16  # face edge (elements)
DTYPE_BYTES = {"float64": 8, "float32": 4, "int32": 4, "int64": 8, "bfloat16": 2, "bfloat8_b": 1088 / 1024}
TILE_BYTES = {"float32": 4096, "bfloat16": 2048, "bfloat8_b": 1088}  # one 32x32 tile page on the device


def tiles(n: int) -> int:
    """Tiles needed to cover n elements (ceil(n / 32))."""
    return -(-int(n) // TILE)


def padded_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The shape stored in TILE layout: last two dims rounded up to multiples of 32 (a 1-D tensor is one row of
    tiles, a scalar one tile)."""
    shape = tuple(shape)
    if len(shape) < 2:
        shape = (1,) * (2 - len(shape)) + shape
    *lead, h, w = shape
    return (*lead, tiles(h) * TILE, tiles(w) * TILE)


def padded_numel(shape: Sequence[int]) -> int:
    """Elements stored in TILE layout."""
    return math.prod(padded_shape(shape))
