"""Optimizer ops of the training step: global_norm, clip_scale and adamw.

adamw(param, grad, m, v, lr, step, grad_scale) {beta1, beta2, eps, weight_decay} -> (param', m', v'):
    g = grad * grad_scale
    m' = beta1*m + (1-beta1)*g;   v' = beta2*v + (1-beta2)*g^2
    param' = param - lr * (m'/(1-beta1^step)) / (sqrt(v'/(1-beta2^step)) + eps) - lr*weight_decay*param
(decoupled weight decay on the old param; step is 1-based.)
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_float, expect_same, expect_scalar, float_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import MIN_ELEMENTS_PER_WORKER, parallel_for, single_threaded_blas
from tilegraph.ops.placement import R

from tilegraph.errors import ShapeError


def global_norm_reference(*grads: np.ndarray) -> np.ndarray:
    dt = grads[0].dtype
    return np.asarray(np.sqrt(sum(np.sum(g.astype(dt) * g.astype(dt)) for g in grads)), dtype=dt)


def clip_scale_reference(norm: np.ndarray, max_norm: float) -> np.ndarray:
    return np.asarray(min(1.0, max_norm / (float(norm) + 1e-6)), dtype=norm.dtype)


def adamw_reference(param, grad, m, v, lr, step, grad_scale, beta1, beta2, eps, weight_decay):
    dt = param.dtype
    lr, step, grad_scale = (dt.type(np.asarray(a)) for a in (lr, step, grad_scale))
    g = grad * grad_scale
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    m_hat = m_new / (1 - dt.type(beta1) ** step)
    v_hat = v_new / (1 - dt.type(beta2) ** step)
    p_new = param - lr * m_hat / (np.sqrt(v_hat) + eps) - lr * weight_decay * param
    return p_new.astype(dt), m_new.astype(dt), v_new.astype(dt)


@register
class GlobalNorm(Op):
    name = "global_norm"
    attrs = {}

    def infer(self, inputs, attrs):
        if not inputs:
            raise ShapeError("op 'global_norm' needs at least one gradient input")
        for i, t in enumerate(inputs):
            expect_float(self.name, f"input {i}", t)
        return [TensorType((), inputs[0].dtype)]

    def reference(self, inputs, attrs):
        return [global_norm_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        # One BLAS dot per tensor (no squared temporaries); sum of partials in float64.
        total = 0.0
        with single_threaded_blas():  # a threaded dot would wake OpenBLAS's threads (see ops/linear.py)
            for g in inputs:
                flat = g.reshape(-1)
                total += float(np.dot(flat, flat))
        outputs[0][...] = math.sqrt(total)

    def flops(self, node):
        return 2 * sum(v.type.numel for v in node.inputs)


@register
class ClipScale(Op):
    name = "clip_scale"
    attrs = {"max_norm": 1.0}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a replicated scalar."""
        return [R], [R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["norm"])
        expect_scalar(self.name, "norm", inputs[0])
        if float_attr(self.name, attrs, "max_norm") <= 0:
            raise ShapeError(f"op 'clip_scale': max_norm={attrs['max_norm']} must be positive")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [clip_scale_reference(inputs[0], float(attrs["max_norm"]))]

    def numpy_into(self, inputs, outputs, attrs):
        outputs[0][...] = min(1.0, float(attrs["max_norm"]) / (float(inputs[0]) + 1e-6))


_ADAM_ATTRS = ("beta1", "beta2", "eps", "weight_decay")


@register
class AdamW(Op):
    name = "adamw"
    # numpy_into is safe when param'/m'/v' are written into the param/m/v arrays themselves (see below),
    # so the runtime may update optimizer state in place.
    outputs_may_alias_inputs = True
    attrs = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): elementwise in the param's placement (the grad arrives
        reduced to it); lr, step and the clip scale replicated."""
        p = placements[0]
        return [p, p, p, p, R, R, R], [p, p, p]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["param", "grad", "m", "v", "lr", "step", "grad_scale"])
        param, grad, m, v, lr, step, grad_scale = inputs
        expect_float(self.name, "param", param)
        for what, t in (("grad", grad), ("m", m), ("v", v)):
            expect_same(self.name, "param", param, what, t)
        for what, t in (("lr", lr), ("step", step), ("grad_scale", grad_scale)):
            expect_scalar(self.name, what, t)
        for key in _ADAM_ATTRS:
            float_attr(self.name, attrs, key)
        return [param, param, param]

    def reference(self, inputs, attrs):
        return list(adamw_reference(*inputs, **{k: float(attrs[k]) for k in _ADAM_ATTRS}))

    def numpy_into(self, inputs, outputs, attrs):
        param, grad, m, v, lr, step, grad_scale = inputs
        p_out, m_out, v_out = outputs
        b1, b2, eps, wd = (float(attrs[k]) for k in _ADAM_ATTRS)
        lr, step, gs = float(lr), float(step), float(grad_scale)
        bc1, bc2 = 1.0 - b1**step, 1.0 - b2**step
        arrays = [a.reshape(-1) for a in (param, grad, m, v, p_out, m_out, v_out)]
        contiguous(self.name, **dict(zip(("param", "grad", "m", "v", "param'", "m'", "v'"), arrays)))
        kernel = cpu_kernels.kernel("adamw", param.dtype)

        # Safe when outputs alias inputs (state updated in place): the kernel reads each element before it
        # writes it.
        base, size = [a.ctypes.data for a in arrays], param.itemsize

        def update(i0, i1, _):
            kernel(*(p + i0 * size for p in base), i1 - i0, gs, lr, b1, b2, eps, wd, bc1, bc2)

        # One memory-bound pass: handing a piece to another thread costs more than it saves below ~1 MB per piece
        # (measured: nano-trickster's 56 updates take 7.4 ms inline, 11.5 ms split in 64K-element pieces).
        parallel_for(arrays[0].size, update, min_per_worker=4 * MIN_ELEMENTS_PER_WORKER)

    def flops(self, node):
        return 14 * node.inputs[0].type.numel

