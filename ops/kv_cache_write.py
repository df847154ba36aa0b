"""kv_cache_write(cache[B, C, kv*D], new[B, T, kv*D]) {start} -> cache with positions start..start+T-1 replaced.

The KV cache of one layer (keys or values, heads flattened into the last dim, as `attention` takes them). Prefill
writes the whole prompt (start 0, T = S); decode writes one token per user at position `start` (T = 1). The
graph's `updates` map the cache state to the result, so a Program carries the cache from step to step.
"""

from __future__ import annotations

from typing import ClassVar

from tilegraph.ops._util import expect_arity, expect_float, expect_rank
from tilegraph.ops.base import Op, register
from tilegraph.ops.placement import Shard, no_partial

from tilegraph.errors import ShapeError


@register
class KvCacheWrite(Op):
    name = "kv_cache_write"
    attrs: ClassVar[dict] = {"start": 0}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): the new rows take the cache's placement (split KV heads
        or split users); a split cache length cannot be written by position, so it is refused by the plan."""
        cache = no_partial(placements[0])
        if isinstance(cache, Shard) and cache.dim == 1:
            raise ShapeError(
                "op 'kv_cache_write': the cache is split along its length; split heads or users instead"
            )
        return [cache, cache], [cache]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["cache", "new"])
        cache, new = inputs
        for what, t in (("cache", cache), ("new", new)):
            expect_float(self.name, what, t)
            expect_rank(self.name, what, t, 3, "[B, positions, kv_heads*head_dim]")
        start = attrs["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ShapeError(f"op 'kv_cache_write': start={start!r} must be a non-negative integer")
        b, c, w = cache.shape
        if new.shape[0] != b or new.shape[2] != w:
            raise ShapeError(
                f"op 'kv_cache_write': new rows {list(new.shape)} do not match cache {list(cache.shape)}; "
                f"they need the same users and width [{b}, T, {w}]"
            )
        if start + new.shape[1] > c:
            raise ShapeError(
                f"op 'kv_cache_write': writing {new.shape[1]} positions at {start} overruns the cache of {c}; "
                f"use a longer cache (--context) or a smaller start"
            )
        if new.dtype != cache.dtype:
            raise ShapeError(
                f"op 'kv_cache_write': cache is {cache.dtype} but new is {new.dtype}; give both the same"
            )
        return [cache]

    def reference(self, inputs, attrs):
        cache, new = inputs
        out = cache.copy()
        s = int(attrs["start"])
        out[:, s : s + new.shape[1], :] = new
        return [out]

    def bytes_moved(self, node):
        """Only the written rows move (the cache is updated in place on a device)."""
        return 2 * node.inputs[1].type.nbytes
