"""Host-side helpers shared by the custom-kernel program builders (the device sections of ops/rmsnorm.py,
ops/swiglu.py, ops/attention.py): work splitting over a core grid, constant tiles, fp32 bit patterns.

Nothing here touches a device: these are pure functions of shapes, used by every consumer of a
ProgramDescription (emulator, ttnn ProgramDescriptor, L1 accounting).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from tilegraph.kernels.description import TILE, Core, CoreRange

from tilegraph.errors import ShapeError
from tilegraph.tiles import FACE, tiles  # noqa: F401 (tiles: used by the program builders as _host.tiles)


def f32_bits(x: float) -> int:
    """The IEEE float32 bit pattern of x, as the uint32 runtime arg the SFPU scalar ops take."""
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def largest_divisor_at_most(n: int, cap: int) -> int:
    """Largest d <= cap dividing n (block sizes must divide the row, so CB reservations never wrap)."""
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def grid_cores(grid: Core, count: int) -> list[Core]:
    """The first `count` cores of a (x, y) grid in row-major order (x fastest), as tt-metal numbers them."""
    gx, gy = grid
    if gx < 1 or gy < 1:
        raise ShapeError(f"core grid {grid} must be at least (1, 1)")
    if count > gx * gy:
        raise ShapeError(f"asked for {count} cores on a {gx}x{gy} grid; use a bigger grid or less work per core")
    return [(i % gx, i // gx) for i in range(count)]


def core_ranges(cores: Sequence[Core]) -> tuple[CoreRange, ...]:
    """Compact CoreRanges covering exactly `cores`: one range per run of consecutive x in a row."""
    by_row: dict[int, list[int]] = {}
    for x, y in cores:
        by_row.setdefault(y, []).append(x)
    ranges = []
    for y in sorted(by_row):
        xs = sorted(by_row[y])
        start = prev = xs[0]
        for x in xs[1:] + [None]:
            if x is not None and x == prev + 1:
                prev = x
                continue
            ranges.append(CoreRange((start, y), (prev, y)))
            if x is not None:
                start = prev = x
    return tuple(ranges)


def split_work(units: int, max_cores: int, granule: int = 1) -> list[tuple[int, int]]:
    """Split `units` work items into contiguous (start, count) ranges over at most `max_cores` cores.

    Counts are multiples of `granule` (attention uses 2: a low and a high Q chunk per core) except possibly the
    last range, and differ by at most one granule, so the slowest core has at most one granule more than others.
    """
    if units <= 0:
        return []
    groups = -(-units // granule)
    cores = max(1, min(max_cores, groups))
    base, extra = divmod(groups, cores)
    out, start = [], 0
    for c in range(cores):
        count = min((base + (1 if c < extra else 0)) * granule, units - start)
        if count > 0:
            out.append((start, count))
        start += count
    return out


def reduce_scaler_tile(value: float = 1.0) -> np.ndarray:
    """The reduce scaler tile as tt-metal lays it out: `value` in row 0 of each 16x16 face, zeros elsewhere."""
    t = np.zeros((TILE, TILE), np.float32)
    t[0, :] = value
    t[FACE, :] = value
    return t


def pad_to(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Zero-pad `a` at the end of every axis up to `shape`."""
    if tuple(a.shape) == tuple(shape):
        return a
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out
