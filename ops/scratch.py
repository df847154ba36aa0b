"""Scratch buffers for the fast numpy paths, allocated once per (op, shape, dtype) key and reused every step.

The numpy backend runs the same Program many times with the same shapes; keeping temporaries here means a
training step allocates nothing after the first one. Buffers are only valid inside one numpy_forward call.
"""

from __future__ import annotations

import numpy as np

_BUFFERS: dict[tuple, np.ndarray] = {}


def scratch(key: tuple, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for `key`; the same array is returned for the same key, shape and dtype."""
    full = (key, tuple(shape), np.dtype(dtype).str)
    buf = _BUFFERS.get(full)
    if buf is None:
        buf = _BUFFERS[full] = np.empty(shape, dtype=dtype)
    return buf


def clear_scratch() -> None:
    _BUFFERS.clear()
