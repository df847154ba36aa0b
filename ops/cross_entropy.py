"""cross_entropy(logits[B, S, V], targets[B, S]) -> mean over tokens of -log softmax(logits)[target]  (a scalar),
and cross_entropy_bwd(logits, targets, dloss) -> dloss * (softmax(logits) - onehot(targets)) / (B*S).
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_int, expect_scalar
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import P, Partial, R, Shard, whole_rows
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy_reference(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, targets[..., None].astype(np.intp), axis=-1)
    return np.asarray(-picked.mean(), dtype=logits.dtype)


def cross_entropy_bwd_reference(logits: np.ndarray, targets: np.ndarray, dloss: np.ndarray) -> np.ndarray:
    p = np.exp(log_softmax(logits))
    np.put_along_axis(p, targets[..., None].astype(np.intp), np.take_along_axis(
        p, targets[..., None].astype(np.intp), axis=-1) - 1.0, axis=-1)
    return (p * (dloss.astype(logits.dtype) / targets.size)).astype(logits.dtype, copy=False)


def _check(op, logits, targets):
    expect_float(op, "logits", logits)
    expect_int(op, "targets", targets)
    if len(logits.shape) < 1 or logits.shape[:-1] != targets.shape or len(logits.shape) != len(targets.shape) + 1:
        raise ShapeError(
            f"op {op!r}: logits {list(logits.shape)} must be targets {list(targets.shape)} plus a vocab dim"
        )


def _check_targets(op, logits, targets):
    v = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= v):
        raise ShapeError(f"op {op!r}: targets must lie in [0, {v}); got [{targets.min()}, {targets.max()}]")


def _softmax_rows_into(logits2: np.ndarray, p: np.ndarray, key: tuple) -> np.ndarray:
    """p = softmax(logits2) row-wise, written into p; returns the rows' log-sum-exp [M, 1] (a scratch array)."""
    m = scratch(key + ("max",), (logits2.shape[0], 1), logits2.dtype)
    np.max(logits2, axis=-1, keepdims=True, out=m)
    np.subtract(logits2, m, out=p)
    np.exp(p, out=p)
    ssum = scratch(key + ("sum",), (logits2.shape[0], 1), logits2.dtype)
    np.sum(p, axis=-1, keepdims=True, out=ssum)
    p /= ssum
    np.log(ssum, out=ssum)
    ssum += m
    return ssum


def _rows_like_targets(logits, targets):
    """Replicated logits with batch-split targets (a replicated stretch of the graph, e.g. after dropout, whose mask
    is drawn whole): slice the logits to the targets' rows (a local slice) rather than gather int32 targets, which
    no collective carries."""
    if logits == R and isinstance(targets, Shard) and targets.dim == 0:
        return targets
    return logits


@register
class CrossEntropy(Op):
    name = "cross_entropy"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): softmax over whole rows; with the rows split each device's
        mean is over its rows, so the loss is the mean over the axis: P(mean)."""
        logits = _rows_like_targets(whole_rows(placements[0], node.inputs[0]), placements[1])
        return [logits, logits], [Partial("mean") if isinstance(logits, Shard) else R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["logits", "targets"])
        _check(self.name, *inputs)
        return [TensorType((), inputs[0].dtype)]

    def reference(self, inputs, attrs):
        _check_targets(self.name, *inputs)
        return [cross_entropy_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        logits, targets = inputs
        _check_targets(self.name, logits, targets)
        l2, t1 = as_rows(logits), targets.reshape(-1)
        partial_sums = {}  # first row of a chunk -> sum over its rows of (lse - logit[target]), in float64

        def rows(r0, r1, worker):
            ls = l2[r0:r1]
            key = ("cross_entropy", worker)
            p = scratch(key + ("p",), ls.shape, ls.dtype)
            lse = _softmax_rows_into(ls, p, key)
            picked = ls[np.arange(r1 - r0), t1[r0:r1]]
            partial_sums[r0] = np.sum(lse[:, 0], dtype=np.float64) - np.sum(picked, dtype=np.float64)

        parallel_rows(l2.shape[0], l2.shape[1], rows)
        outputs[0][...] = sum(partial_sums[r] for r in sorted(partial_sums)) / l2.shape[0]

    def backward(self, g, node, grads):
        (dloss,) = grads
        if dloss is None:
            return [None, None]
        logits, targets = node.inputs
        return [g.call("cross_entropy_bwd", logits, targets, dloss), None]

    def flops(self, node):
        return 4 * node.inputs[0].type.numel


@register
class CrossEntropyBwd(Op):
    name = "cross_entropy_bwd"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): with the rows split, the local op divides by the local row
        count, so the seed must be 1/N of the global one (a partial sum) for an exact slice of the gradient."""
        logits = _rows_like_targets(whole_rows(placements[0], node.inputs[0]), placements[1])
        return [logits, logits, P if isinstance(logits, Shard) else R], [logits]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["logits", "targets", "dloss"])
        logits, targets, dloss = inputs
        _check(self.name, logits, targets)
        expect_scalar(self.name, "dloss", dloss)
        return [logits]

    def reference(self, inputs, attrs):
        _check_targets(self.name, inputs[0], inputs[1])
        return [cross_entropy_bwd_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        logits, targets, dloss = inputs
        _check_targets(self.name, logits, targets)
        l2, d2, t1 = as_rows(logits), as_rows(outputs[0]), targets.reshape(-1)
        factor = float(dloss) / l2.shape[0]

        def rows(r0, r1, worker):
            ds = d2[r0:r1]
            _softmax_rows_into(l2[r0:r1], ds, ("cross_entropy_bwd", worker))
            ds[np.arange(r1 - r0), t1[r0:r1]] -= 1.0
            ds *= factor

        parallel_rows(l2.shape[0], l2.shape[1], rows)

    def flops(self, node):
        return 5 * node.inputs[0].type.numel
