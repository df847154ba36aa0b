"""embedding(table[V, H], ids[B, S]) -> table[ids]  and  embedding_bwd(ids, dy) {vocab} -> scatter-add into [V, H]."""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_int, expect_rank, positive_int_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.linear import gemm_tn
from tilegraph.ops.placement import P, Partial, R, Shard, last_dim, no_partial
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError

# Largest one-hot matrix (V x tokens) embedding_bwd builds for its gemm form (16 MiB in float32).
ONEHOT_MAX_ELEMENTS = 1 << 22


def embedding_reference(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return table[ids]


def embedding_bwd_reference(ids: np.ndarray, dy: np.ndarray, vocab: int) -> np.ndarray:
    dtable = np.zeros((vocab, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dtable, ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))
    return dtable


def _check_ids_in_range(op: str, ids: np.ndarray, vocab: int) -> None:
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ShapeError(f"op {op!r}: token ids must lie in [0, {vocab}); got range [{ids.min()}, {ids.max()}]")


@register
class Embedding(Op):
    name = "embedding"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): split ids (batch) pass through; a hidden-split table gives
        a hidden-split output (a vocab split would need a masked lookup + all_reduce, so it is gathered)."""
        table, ids = no_partial(placements[0]), placements[1]
        if isinstance(table, Shard) and (table.dim == 0 or ids != R):
            table = R
        if isinstance(table, Shard):
            return [table, ids], [Shard(2, table.order)]
        return [table, ids], [ids]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["table", "ids"])
        table, ids = inputs
        expect_float(self.name, "table", table)
        expect_rank(self.name, "table", table, 2, "[V, H]")
        expect_int(self.name, "ids", ids)
        return [TensorType(ids.shape + (table.shape[1],), table.dtype)]

    def reference(self, inputs, attrs):
        table, ids = inputs
        _check_ids_in_range(self.name, ids, table.shape[0])
        return [embedding_reference(table, ids)]

    def numpy_into(self, inputs, outputs, attrs):
        table, ids = inputs
        (y,) = outputs
        _check_ids_in_range(self.name, ids, table.shape[0])
        np.take(table, ids.reshape(-1), axis=0, out=y.reshape(-1, y.shape[-1]))

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        table, ids = node.inputs
        return [g.call("embedding_bwd", ids, dy, vocab=table.shape[0]), None]

    def bytes_moved(self, node):
        # Only the gathered rows of the table are read.
        ids, y = node.inputs[1], node.outputs[0]
        return ids.type.nbytes + 2 * y.type.nbytes


@register
class EmbeddingBwd(Op):
    name = "embedding_bwd"
    attrs = {"vocab": None}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): the scatter-add of split rows is a partial table gradient;
        a hidden split of dy splits the table gradient's hidden dim."""
        ids, dy = placements
        if isinstance(dy, Partial):
            return ([R, dy] if ids == R else [ids, ids]), [P]
        if ids == R:
            if isinstance(dy, Shard) and dy.dim == last_dim(node.inputs[1]):
                return [R, dy], [Shard(1, dy.order)]
            return [R, R], [R]
        return [ids, ids], [P]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["ids", "dy"])
        ids, dy = inputs
        expect_int(self.name, "ids", ids)
        expect_float(self.name, "dy", dy)
        vocab = positive_int_attr(self.name, attrs, "vocab")
        if dy.shape[:-1] != ids.shape or len(dy.shape) != len(ids.shape) + 1:
            raise ShapeError(
                f"op 'embedding_bwd': dy {list(dy.shape)} must be ids {list(ids.shape)} plus a hidden dim"
            )
        return [TensorType((vocab, dy.shape[-1]), dy.dtype)]

    def reference(self, inputs, attrs):
        ids, dy = inputs
        _check_ids_in_range(self.name, ids, int(attrs["vocab"]))
        return [embedding_bwd_reference(ids, dy, int(attrs["vocab"]))]

    def numpy_into(self, inputs, outputs, attrs):
        ids, dy = inputs
        (dtable,) = outputs
        flat_ids = ids.reshape(-1)
        dy2 = dy.reshape(-1, dy.shape[-1])
        vocab = dtable.shape[0]
        _check_ids_in_range(self.name, ids, vocab)
        if vocab * flat_ids.size <= ONEHOT_MAX_ELEMENTS:
            # Small vocabularies: the scatter-add as one gemm, onehot[V, T] @ dy[T, H] (BLAS-fast; np.add.at
            # handles one row at a time and is ~10x slower at nano-trickster's V=256, T=4096).
            onehot = scratch(("embedding_bwd", vocab, flat_ids.size), (vocab, flat_ids.size), dy.dtype)
            onehot.fill(0)
            onehot[flat_ids, np.arange(flat_ids.size)] = 1
            gemm_tn(onehot.T, dy2, dtable)  # onehot^T is [T, V]: the T rows split over the workers
        else:
            dtable.fill(0)
            np.add.at(dtable, flat_ids, dy2)

    def flops(self, node):
        return node.inputs[1].type.numel
