"""The local (per-device) halves of the expert-parallel MoE; graph/passes/shard.py places them around the two
all_to_all collectives (ops/all_to_all.py). Experts are split in `devices` contiguous groups, group j on device j.

moe_dispatch(h [B, S, H], gates [B, S, E]) {devices} -> (send_h [n, T, H], send_g [n, T, E/n], slots int32 [n, T])
    row r of chunk j holds the r-th local token (T = B*S) routed to any expert of group j, with its gates for that
    group; slots[j, r] is that token's index, -1 for an unused row (a chunk has room for every local token, so
    nothing is ever dropped).
moe_dispatch_bwd(d_send_h, d_send_g, slots) {experts, token_shape} -> (dh, dgates): the adjoint (scatter back).
moe_combine(out [n, T, H], slots) {token_shape} -> y [B, S, H]: y[slots[j, r]] += out[j, r].
moe_combine_bwd(dy, slots) -> d_out [n, T, H]: d_out[j, r] = dy[slots[j, r]] (0 on unused rows).
They exist only in sharded graphs (after autodiff), so their gradients are these explicit ops, not backward rules.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._util import expect_float, expect_int, positive_int_attr
from tilegraph.ops.base import Op, TensorType, register

from tilegraph.errors import ShapeError


def dispatch_reference(h, gates, devices):
    x = h.reshape(-1, h.shape[-1])
    g = gates.reshape(-1, gates.shape[-1])
    t, e = g.shape
    per = e // devices
    send_h = np.zeros((devices, t, x.shape[-1]), x.dtype)
    send_g = np.zeros((devices, t, per), g.dtype)
    slots = np.full((devices, t), -1, np.int32)
    for j in range(devices):
        group = g[:, j * per:(j + 1) * per]
        rows = np.flatnonzero(np.any(group != 0, axis=-1))
        send_h[j, :rows.size] = x[rows]
        send_g[j, :rows.size] = group[rows]
        slots[j, :rows.size] = rows
    return send_h, send_g, slots


def _token_shape(op, attrs):
    shape = attrs["token_shape"]
    if not isinstance(shape, (tuple, list)) or not shape or any(int(d) < 1 for d in shape):
        raise ShapeError(f"op {op!r}: token_shape={shape!r} must be the tokens' leading dims, e.g. (B, S)")
    return tuple(int(d) for d in shape)


def _slots_ok(op, slots, n, t):
    expect_int(op, "slots", slots)
    if slots.shape != (n, t):
        raise ShapeError(f"op {op!r}: slots {list(slots.shape)} must be [{n}, {t}]")


@register
class MoEDispatch(Op):
    name = "moe_dispatch"
    attrs: ClassVar[dict] = {"devices": 1}

    def infer(self, inputs, attrs):
        h, g = inputs
        expect_float(self.name, "h", h)
        n = positive_int_attr(self.name, attrs, "devices")
        if g.shape[:-1] != h.shape[:-1] or g.shape[-1] % n:
            raise ShapeError(f"op 'moe_dispatch': gates {list(g.shape)} must be h's tokens x experts, with the "
                             f"experts divisible by devices={n}")
        t = h.numel // h.shape[-1]
        return [TensorType((n, t, h.shape[-1]), h.dtype), TensorType((n, t, g.shape[-1] // n), g.dtype),
                TensorType((n, t), "int32")]

    def reference(self, inputs, attrs):
        return list(dispatch_reference(*inputs, int(attrs["devices"])))

    def bytes_moved(self, node):
        return 2 * sum(v.type.nbytes for v in node.outputs)


@register
class MoEDispatchBwd(Op):
    name = "moe_dispatch_bwd"
    attrs: ClassVar[dict] = {"experts": 1, "token_shape": (1,)}

    def infer(self, inputs, attrs):
        dh, dg, slots = inputs
        n, t, hid = dh.shape
        _slots_ok(self.name, slots, n, t)
        shape = _token_shape(self.name, attrs)
        e = positive_int_attr(self.name, attrs, "experts")
        return [TensorType((*shape, hid), dh.dtype), TensorType((*shape, e), dg.dtype)]

    def reference(self, inputs, attrs):
        dsh, dsg, slots = inputs
        n, t, hid = dsh.shape
        per = dsg.shape[-1]
        dh = np.zeros((t, hid), dsh.dtype)
        dg = np.zeros((t, n * per), dsg.dtype)
        for j in range(n):
            used = slots[j] >= 0
            np.add.at(dh, slots[j][used], dsh[j][used])
            dg[slots[j][used], j * per:(j + 1) * per] = dsg[j][used]
        shape = _token_shape(self.name, attrs)
        return [dh.reshape(*shape, hid), dg.reshape(*shape, n * per)]


@register
class MoECombine(Op):
    name = "moe_combine"
    attrs: ClassVar[dict] = {"token_shape": (1,)}

    def infer(self, inputs, attrs):
        out, slots = inputs
        n, t, hid = out.shape
        _slots_ok(self.name, slots, n, t)
        return [TensorType((*_token_shape(self.name, attrs), hid), out.dtype)]

    def reference(self, inputs, attrs):
        out, slots = inputs
        n, t, hid = out.shape
        y = np.zeros((t, hid), out.dtype)
        for j in range(n):
            used = slots[j] >= 0
            np.add.at(y, slots[j][used], out[j][used])
        return [y.reshape(*_token_shape(self.name, attrs), hid)]


@register
class MoECombineBwd(Op):
    name = "moe_combine_bwd"
    attrs: ClassVar[dict] = {"devices": 1}

    def infer(self, inputs, attrs):
        dy, slots = inputs
        n = positive_int_attr(self.name, attrs, "devices")
        t = dy.numel // dy.shape[-1]
        _slots_ok(self.name, slots, n, t)
        return [TensorType((n, t, dy.shape[-1]), dy.dtype)]

    def reference(self, inputs, attrs):
        dy, slots = inputs
        d = dy.reshape(-1, dy.shape[-1])
        out = np.where((slots >= 0)[..., None], d[np.maximum(slots, 0)], 0.0).astype(dy.dtype)
        return [out]
