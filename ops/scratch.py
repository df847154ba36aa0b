"""Scratch buffers for the fast numpy paths, allocated once per (thread, key, shape, dtype) and reused every step.

The numpy backend runs the same Program many times with the same shapes; keeping temporaries here means a
training step allocates nothing after the first one. A buffer is only valid inside one numpy_into call, and
each thread gets its own buffers, so ops split over worker threads (ops.parallel), or called from several
threads at once, never share scratch.
"""

from __future__ import annotations

import threading

import numpy as np

_BUFFERS: dict[tuple, np.ndarray] = {}


def scratch(key: tuple, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for `key` on this thread; the same array comes back for the same key, shape, dtype."""
    full = (threading.get_ident(), key, tuple(shape), np.dtype(dtype).str)
    buf = _BUFFERS.get(full)
    if buf is None:
        buf = _BUFFERS[full] = np.empty(shape, dtype=dtype)
    return buf


def clear_scratch() -> None:
    """Drop every scratch buffer (e.g. after training, to give the memory back)."""
    _BUFFERS.clear()
