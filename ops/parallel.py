"""Splitting a fast numpy path over the CPU cores.

numpy's elementwise ufuncs run on one core, and OpenBLAS parallelises each gemm internally, which for the many
small per-head gemms of attention costs more in synchronisation than it gains. Both release the GIL, so the
fast paths here split their rows over a small pool of Python threads instead, with OpenBLAS set to one thread
for the duration (each worker then runs its own single-threaded gemms side by side).

`TILEGRAPH_THREADS` sets the number of workers (default: the number of CPUs this process may use).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tilegraph.errors import TilegraphError


def _worker_count() -> int:
    env = os.environ.get("TILEGRAPH_THREADS")
    if env:
        if not env.strip().isdigit() or int(env) < 1:
            raise TilegraphError(f"TILEGRAPH_THREADS={env!r} must be a positive integer (or unset for all CPUs)")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


WORKERS = _worker_count()
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tilegraph-ops")
        return _POOL


def _find_openblas_threads_api():
    """(get, set) of the OpenBLAS bundled with numpy, or None when numpy uses another BLAS."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "libopenblas*")):
        lib = ctypes.CDLL(path)
        for suffix in ("64_", ""):
            get = getattr(lib, f"openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None


_BLAS_THREADS = _find_openblas_threads_api()


_BLAS_LOCK = threading.Lock()
_BLAS_DEPTH = 0  # callers currently inside single_threaded_blas
_BLAS_SAVED = 0  # the thread count to restore when the last one leaves


@contextlib.contextmanager
def single_threaded_blas():
    """OpenBLAS runs each call on the calling thread inside this block (no-op for other BLAS libraries).

    Nesting and concurrent callers are counted, so the original thread count comes back only when the last
    caller leaves."""
    global _BLAS_DEPTH, _BLAS_SAVED
    if _BLAS_THREADS is None:
        yield
        return
    get, set_ = _BLAS_THREADS
    with _BLAS_LOCK:
        if _BLAS_DEPTH == 0:
            _BLAS_SAVED = get()
            set_(1)
        _BLAS_DEPTH += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_DEPTH -= 1
            if _BLAS_DEPTH == 0:
                set_(_BLAS_SAVED)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[start, end) ranges covering range(n) in at most `parts` nearly equal, non-empty pieces."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i] < edges[i + 1]]


def parallel_for(n: int, body: Callable[[int, int, int], None], min_per_worker: int = 1) -> None:
    """body(start, end, worker) over pieces of range(n) (about min_per_worker long each, at most PIECES_PER_WORKER
    per worker), handed out one at a time to whichever worker is free; runs inline when one piece would do.

    Handing pieces out as workers become free, instead of one fixed half per worker, keeps both cores busy when
    the machine is shared: a worker that the OS preempts simply takes fewer pieces, instead of making the other
    wait for its whole half. The pieces themselves do not depend on timing, so results are deterministic.
    Each worker index is used by exactly one piece at a time, so bodies may key scratch buffers on it."""
    pieces = split(n, min(WORKERS * PIECES_PER_WORKER, max(1, n // max(1, min_per_worker))))
    if len(pieces) <= 1 or WORKERS == 1:
        for a, b in pieces:
            body(a, b, 0)
        return
    run_pieces(pieces, body)


def run_pieces(pieces: list[tuple[int, int]], body: Callable[[int, int, int], None]) -> None:
    """body(start, end, worker) for every piece, the pieces pulled in order by up to WORKERS threads (the caller
    is worker 0). Raises the first error of any piece after all workers stopped."""
    next_piece = itertools.count()  # next() on a count is atomic under the GIL

    def worker(w: int) -> None:
        for i in iter(next_piece.__next__, None):
            if i >= len(pieces):
                return
            body(pieces[i][0], pieces[i][1], w)

    helpers = [_pool().submit(worker, w) for w in range(1, min(WORKERS, len(pieces)))]
    try:
        worker(0)
    finally:
        for f in helpers:
            f.result()


# Pieces per worker that parallel_for cuts a range into (when each is still at least min_per_worker long).
PIECES_PER_WORKER = 8


# Below this many elements per worker, handing work to a thread costs more than it saves.
MIN_ELEMENTS_PER_WORKER = 1 << 16
# Each worker walks its rows in chunks of about this many elements, so that the several passes an op makes over
# a chunk find it in the core's cache instead of streaming whole arrays from memory once per pass.
CHUNK_ELEMENTS = 1 << 18


def as_rows(x: np.ndarray) -> np.ndarray:
    """A 2-D [rows, last dim] view of x (a 0-d array becomes [1, 1])."""
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def parallel_rows(n_rows: int, row_size: int, body: Callable[[int, int, int], None]) -> None:
    """body(start, end, worker) over cache-sized chunks of rows (about CHUNK_ELEMENTS each), the chunks handed out
    to the workers as they become free; inline when there are fewer than 2 * MIN_ELEMENTS_PER_WORKER elements."""
    rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, row_size))
    chunks = [(r, min(n_rows, r + rows_per_chunk)) for r in range(0, n_rows, rows_per_chunk)]
    if WORKERS == 1 or n_rows * row_size < 2 * MIN_ELEMENTS_PER_WORKER or len(chunks) == 1:
        for a, b in chunks:
            body(a, b, 0)
        return
    run_pieces(chunks, body)
