"""linear(x[..., K], w) -> x @ w  and its weight gradient linear_wgrad(x, dy) -> sum over leading dims of x^T dy.

Weights are stored [in, out] = [K, N]. `transpose_w=True` means w is stored [N, K] (the tied embedding table used
as the output projection), so the op computes x @ w^T.
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import parallel
from tilegraph.ops._util import expect_arity, expect_float
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.parallel import parallel_for, run_pieces, single_threaded_blas, split
from tilegraph.ops.placement import P, Partial, R, Shard, last_dim, no_partial
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError


def _kn(w_shape: tuple[int, ...], transpose_w: bool) -> tuple[int, int]:
    """(K, N) of a weight in either storage layout."""
    return (w_shape[1], w_shape[0]) if transpose_w else (w_shape[0], w_shape[1])


def linear_reference(x: np.ndarray, w: np.ndarray, transpose_w: bool = False) -> np.ndarray:
    dt = np.result_type(x.dtype, w.dtype)
    wk = w.T if transpose_w else w
    return np.matmul(x.astype(dt, copy=False), wk.astype(dt, copy=False))


def linear_wgrad_reference(x: np.ndarray, dy: np.ndarray, transpose_w: bool = False) -> np.ndarray:
    dt = np.result_type(x.dtype, dy.dtype)
    x2 = x.reshape(-1, x.shape[-1]).astype(dt, copy=False)
    dy2 = dy.reshape(-1, dy.shape[-1]).astype(dt, copy=False)
    return dy2.T @ x2 if transpose_w else x2.T @ dy2


# GEMMs run on the ops.parallel workers with one BLAS thread each, never on OpenBLAS's own threads: after each
# call those spin for ~0.1 s (2^28 cycles) waiting for more work, and a training step calls a gemm every few
# milliseconds, so on a 2-core machine they would always be spinning next to the two workers of the attention
# and elementwise ops, taking a third of the CPU from them. Measured here: after one 2-thread gemm, the idle
# OpenBLAS thread burned 40-50 ms of CPU in the next 0.5 s.
GEMM_MIN_ROWS = 256  # fewer rows per piece and the repeated packing of the weight costs more than the split gains
# One piece per worker: every piece packs the whole weight again, which at these sizes costs more than the slack
# of smaller pieces buys back. Measured on the 2-core Xeon (nano-trickster shapes, M = 4096): 1 piece per worker
# 279-321 GFLOP/s forward, 2 pieces 260-305, 3 pieces 229-266.
GEMM_PIECES_PER_WORKER = 1


def gemm_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[M, N] = a[M, K] @ b[K, N], the rows of a and out split over the workers (single-threaded gemms)."""
    m = a.shape[0]
    rows = max(GEMM_MIN_ROWS, -(-m // (parallel.WORKERS * GEMM_PIECES_PER_WORKER)))

    def body(r0, r1, _):
        np.matmul(a[r0:r1], b, out=out[r0:r1])

    with single_threaded_blas():
        parallel_for(m, body, min_per_worker=rows)


def gemm_tn(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[K, N] = a[T, K]^T @ b[T, N]: the contraction (rows) split over the workers, each piece's gemm into its
    own partial, the partials then summed in a fixed order (deterministic, whatever the thread timing)."""
    t = a.shape[0]
    pieces = split(t, min(parallel.WORKERS * GEMM_PIECES_PER_WORKER, max(1, t // GEMM_MIN_ROWS)))
    partials = [out] + [scratch(("gemm_tn", i), out.shape, out.dtype) for i in range(1, len(pieces))]
    first_row = {r0: i for i, (r0, _) in enumerate(pieces)}

    def body(r0, r1, _):
        np.matmul(a[r0:r1].T, b[r0:r1], out=partials[first_row[r0]])

    with single_threaded_blas():
        if len(pieces) == 1 or parallel.WORKERS == 1:
            for r0, r1 in pieces:
                body(r0, r1, 0)
        else:
            run_pieces(pieces, body)
    for p in partials[1:]:
        out += p


@register
class Linear(Op):
    name = "linear"
    attrs = {"transpose_w": False}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py). Column-parallel (w split on N): whole rows in, split
        features out. Row-parallel (w split on K): the contraction dim split on both sides, the product a partial
        sum. Replicated w: a row (batch) split of x passes through."""
        x, w = placements
        ndim = 0 if node.attrs["transpose_w"] else 1
        last = last_dim(node.inputs[0])
        w = no_partial(w)
        if w == R:
            if isinstance(x, Shard) and x.dim == last:
                x = R
            return [x, R], [x]
        if w.dim == ndim:
            return [R, w], [Shard(last, w.order)]
        return [Shard(last, w.order), w], [P]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "w"])
        x, w = inputs
        expect_float(self.name, "x", x)
        expect_float(self.name, "w", w)
        if len(x.shape) < 1 or len(w.shape) != 2:
            raise ShapeError(
                f"op 'linear': x {list(x.shape)} must be [..., K] and w {list(w.shape)} must be 2-D "
                f"({'[N, K]' if attrs['transpose_w'] else '[K, N]'})"
            )
        k, n = _kn(w.shape, bool(attrs["transpose_w"]))
        if x.shape[-1] != k:
            layout = "[N, K] (transpose_w=True)" if attrs["transpose_w"] else "[K, N]"
            raise ShapeError(
                f"op 'linear': x has last dim {x.shape[-1]} but w {list(w.shape)} is {layout} with K={k}; "
                f"make the weight's input dim equal the activation's last dim"
                + ("" if attrs["transpose_w"] else " (or set transpose_w=True for a [N, K] weight)")
            )
        if x.dtype != w.dtype:
            raise ShapeError(f"op 'linear': x is {x.dtype} but w is {w.dtype}; give both the same dtype")
        return [TensorType(x.shape[:-1] + (n,), x.dtype)]

    def reference(self, inputs, attrs):
        x, w = inputs
        return [linear_reference(x, w, bool(attrs["transpose_w"]))]

    def numpy_into(self, inputs, outputs, attrs):
        x, w = inputs
        (y,) = outputs
        wk = w.T if attrs["transpose_w"] else w
        # One GEMM over all leading dims: [M, K] @ [K, N] with M = B*S (a transposed w is still BLAS-friendly),
        # its rows split over the workers.
        gemm_rows(x.reshape(-1, x.shape[-1]), wk, y.reshape(-1, y.shape[-1]))

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        x, w = node.inputs
        t = bool(node.attrs["transpose_w"])
        # y = x @ W (W = w or w^T): dx = dy @ W^T, which is linear(dy, w) with the opposite storage flag.
        dx = g.call("linear", dy, w, transpose_w=not t)
        dw = g.call("linear_wgrad", x, dy, transpose_w=t)
        return [dx, dw]

    def flops(self, node):
        x, w = node.inputs
        k, n = _kn(w.shape, bool(node.attrs["transpose_w"]))
        return 2 * (x.type.numel // k) * k * n


@register
class LinearWgrad(Op):
    name = "linear_wgrad"
    attrs = {"transpose_w": False}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): dw = sum over rows of x^T dy, so split rows give a partial
        sum and a feature split of x (dy) splits dw's K (N) dim."""
        x, dy = placements
        kdim, ndim = (1, 0) if node.attrs["transpose_w"] else (0, 1)
        if isinstance(x, Partial) and isinstance(dy, Partial):
            dy = R
        if isinstance(x, Partial) and dy != R:
            x = R
        if isinstance(dy, Partial) and x != R:
            dy = R
        if isinstance(x, Partial) or isinstance(dy, Partial):
            return [x, dy], [P]
        x_feat = isinstance(x, Shard) and x.dim == last_dim(node.inputs[0])
        dy_feat = isinstance(dy, Shard) and dy.dim == last_dim(node.inputs[1])
        if x_feat and dy_feat:
            x, x_feat = R, False
        if dy_feat and x == R:
            return [x, dy], [Shard(ndim, dy.order)]
        if x_feat and dy == R:
            return [x, dy], [Shard(kdim, x.order)]
        if isinstance(x, Shard) or isinstance(dy, Shard):
            rows = x if isinstance(x, Shard) and not x_feat else dy
            return [rows, rows], [P]
        return [R, R], [R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "dy"])
        x, dy = inputs
        expect_float(self.name, "x", x)
        expect_float(self.name, "dy", dy)
        if len(x.shape) < 1 or x.shape[:-1] != dy.shape[:-1] or len(dy.shape) != len(x.shape):
            raise ShapeError(
                f"op 'linear_wgrad': x {list(x.shape)} and dy {list(dy.shape)} must share all leading dims "
                f"([..., K] and [..., N])"
            )
        if x.dtype != dy.dtype:
            raise ShapeError(f"op 'linear_wgrad': x is {x.dtype} but dy is {dy.dtype}; give both the same dtype")
        k, n = x.shape[-1], dy.shape[-1]
        return [TensorType((n, k) if attrs["transpose_w"] else (k, n), x.dtype)]

    def reference(self, inputs, attrs):
        x, dy = inputs
        return [linear_wgrad_reference(x, dy, bool(attrs["transpose_w"]))]

    def numpy_into(self, inputs, outputs, attrs):
        x, dy = inputs
        (dw,) = outputs
        x2 = x.reshape(-1, x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        # Transposed views go straight to BLAS (gemm with trans flags); no copies.
        if attrs["transpose_w"]:
            gemm_tn(dy2, x2, dw)
        else:
            gemm_tn(x2, dy2, dw)

    def backward(self, g, node, grads):
        (ddw,) = grads
        if ddw is None:
            return [None, None]
        x, dy = node.inputs
        t = bool(node.attrs["transpose_w"])
        # dw = x^T dy  =>  d x = dy @ ddw^T,  d dy = x @ ddw  (ddw stored [N, K] when transpose_w).
        dx = g.call("linear", dy, ddw, transpose_w=not t)
        ddy = g.call("linear", x, ddw, transpose_w=t)
        return [dx, ddy]

    def flops(self, node):
        x, dy = node.inputs
        return 2 * x.type.numel * dy.shape[-1]
