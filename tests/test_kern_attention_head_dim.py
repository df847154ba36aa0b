"""Attention forward and backward at any head_dim that is a multiple of 32, at HiFi4 and HiFi2, with float32 or
bfloat16 intermediates, in the emulator against the float64 numpy reference (the fuzz's error bounds); the
fidelity error term against the emulator's FPU datapath (which tests/test_emu_ttsim_oracle.py checks bit for bit
against ttsim at every fidelity); and the place pass putting head_dim 96 on the kernels."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.graph import load_spec, training_step
from tilegraph.kernels.attention.backward import attention_bwd_program
from tilegraph.kernels.attention.program import attention_program
from tilegraph.runtime import fuzz

from tilegraph.compiler import Target, compile
from tilegraph.errors import ShapeError

SPECS = Path(__file__).resolve().parent.parent / "specs"
CASE = dict(dtype="bfloat16", grid=[2, 2], scale=1.0, seed=11, batch=1, seq=100, kv_heads=1, group=2, causal=True,
            q_chunk=32, k_chunk=64, softmax_scale=None, window=None)


@pytest.mark.parametrize("op", ["attention", "attention_bwd"])
@pytest.mark.parametrize("head_dim", [96, 160, 256])
@pytest.mark.parametrize("fidelity,interm", [("HiFi4", None), ("HiFi2", None), ("HiFi2", "bfloat16")])
def test_head_dims_beyond_powers_of_two_match_numpy(op, head_dim, fidelity, interm):
    case = {**CASE, "head_dim": head_dim, "math_fidelity": fidelity, "interm": interm}
    outcome = fuzz.run_case(op, case, "emu")
    assert outcome.ok, outcome.worst
    assert outcome.max_abs > 0  # the kernels ran (an exact result from bf16 hardware arithmetic would be a bug)


@pytest.mark.parametrize("build", [attention_program, attention_bwd_program])
@pytest.mark.parametrize("head_dim", [16, 80, 100])
def test_a_head_dim_not_a_multiple_of_32_is_a_clear_error(build, head_dim):
    with pytest.raises(ShapeError, match=rf"head_dim {head_dim} is not a multiple of 32"):
        build(1, 64, 2, head_dim)


@pytest.mark.parametrize("build", [attention_program, attention_bwd_program])
def test_wide_heads_get_chunks_that_fit_l1(build):
    from tilegraph.kernels.description import L1_CB_BUDGET

    narrow = build(1, 4096, 8, 128, q_chunk=128, k_chunk=128)
    wide = build(1, 4096, 8, 512, q_chunk=128, k_chunk=128)
    chunks = [next(iter(d.kernels[1].runtime_args.values()))[:2] for d in (narrow, wide)]
    assert chunks[0] == (4, 4) and chunks[1][0] * chunks[1][1] < 16
    assert max(wide.l1_bytes_per_core().values()) <= L1_CB_BUDGET


def _emulated(op, case):
    inputs, attrs, opts = fuzz.make_inputs(op, case)
    held = fuzz.device_values(inputs, op, case["dtype"], "emu", dict(opts.knobs))
    from tilegraph.runtime.kernel_ops import run_kernel_op

    got = run_kernel_op(op, held, attrs, "emu", opts)
    return held, attrs, opts, [np.asarray(g, np.float64) for g in got]


@pytest.mark.parametrize("op", ["attention", "attention_bwd"])
def test_hifi2_is_what_runs_and_its_bound_is_wider(op):
    # The fidelity reaches the emulated matrix engine (outputs differ, HiFi2's error is larger on average) and
    # the bound grows by the fidelity terms where HiFi2 drops bits.
    case = {**CASE, "head_dim": 64, "seq": 128, "q_chunk": 32, "k_chunk": 32}
    runs = {f: _emulated(op, {**case, "math_fidelity": f}) for f in ("HiFi4", "HiFi2")}
    held, attrs, _, _ = runs["HiFi4"]
    refs = fuzz.reference(op, held, attrs)
    err = {f: np.mean(np.abs(runs[f][3][0].reshape(refs[0].shape) - refs[0])) for f in runs}
    assert err["HiFi2"] > 1.2 * err["HiFi4"], err
    bounds = {f: fuzz.error_bounds(op, held, attrs, refs, "emu", runs[f][2])[0] for f in runs}
    assert (bounds["HiFi2"] > bounds["HiFi4"]).all()
    for f, (_, _, _, got) in runs.items():
        assert (np.abs(got[0].reshape(refs[0].shape) - refs[0]) <= bounds[f]).all(), f


def _source_value(bits19: np.ndarray) -> np.ndarray:
    """The value of 19-bit source-register data (sign, 8-bit exponent, 10-bit mantissa)."""
    return (bits19.astype(np.uint32) << np.uint32(13)).view(np.float32).astype(np.float64)


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3"])
@pytest.mark.parametrize("fmt_a,fmt_b", [("bfloat16", "bfloat16"), ("bfloat16", "float32"), ("float32", "float32"),
                                         ("bfloat16", "bfloat8_b")])
@settings(max_examples=4, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fidelity_error_bounds_the_emulated_elwmul_and_is_reached(fidelity, fmt_a, fmt_b, seed):
    # ELWMUL of the emulator (ttsim's arithmetic) over the phases of `fidelity`, into a zeroed fp32 DST, against
    # the exact product of the source values. The bound holds on every datum and is nearly reached on some: the
    # derivation neither under- nor grossly over-counts the bits the phases leave out.
    from tilegraph.runtime.emulator import emulator_binaries

    fn = emulator_binaries()[1].tgemu_dp_batch
    ptr = ctypes.c_void_p
    fn.restype, fn.argtypes = None, [ctypes.c_int, ctypes.c_uint64, ptr, ptr, ptr, ctypes.c_int, ctypes.c_uint32, ptr]
    rng = np.random.default_rng(seed)
    n = 1 << 14

    def operands(fmt):
        exp = rng.integers(120, 135, n).astype(np.uint32)
        man = rng.integers(0, 1 << 10, n).astype(np.uint32)
        man &= {"float32": 0x3FF, "bfloat16": 0x3F8, "bfloat8_b": 0x3F0}[fmt]  # the bits the format fills
        return (rng.integers(0, 2, n).astype(np.uint32) << 18) | (exp << 10) | man

    a, b = operands(fmt_a), operands(fmt_b)
    dst = np.zeros(n, np.uint32)
    for phase in fuzz.FIDELITY_PHASES[fidelity]:
        out = np.zeros(n, np.uint32)
        fn(2, n, a.ctypes.data, b.ctypes.data, dst.ctypes.data, 1, phase, out.ctypes.data)  # 2: elwmul
        dst = out
    exact = _source_value(a) * _source_value(b)
    got = dst.view(np.float32).astype(np.float64)
    rel = np.abs(got - exact) / np.abs(exact)
    # + the fp32 DST rounding of the phases, and SrcA's bit 0, which no phase multiplies (fidelity_error leaves
    # it to SRC_TF32: only a TF32 operand has it)
    bit0 = 2.0**-10 if fmt_a == "float32" else 0.0
    bound = fuzz.fidelity_error(fmt_a, fmt_b, fidelity) + bit0 + 2.0**-22
    assert rel.max() <= bound
    if fuzz.fidelity_error(fmt_a, fmt_b, fidelity) > 0:
        assert rel.max() > 0.7 * bound


def test_hifi4_and_hifi2_drop_what_the_formats_do_not_have():
    # bf16 operands: HiFi4 keeps every bit; HiFi2 drops SrcB's last bit; bfloat8_b (7 significant bits) in SrcB
    # loses nothing at HiFi2.
    assert fuzz.fidelity_error("bfloat16", "bfloat16", "HiFi4") == 0.0
    assert 2.0**-7 < fuzz.fidelity_error("bfloat16", "bfloat16", "HiFi2") < 2.0**-6
    assert fuzz.fidelity_error("bfloat16", "bfloat8_b", "HiFi2") == 0.0


def _step(head_dim):
    spec = load_spec(SPECS / "nano-trickster.yaml").to_dict()
    spec.update({"name": f"heads-{head_dim}", "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                 "hidden_size": 2 * head_dim})
    return training_step(load_spec(spec), 1, 64)


def test_place_puts_head_dim_96_on_the_kernels():
    program = compile(_step(96), Target(backend="emu"))
    impls = {s.op: s.impl for s in program.steps if s.op.startswith("attention")}
    assert impls == {"attention": "kernel:attention", "attention_bwd": "kernel:attention_bwd"}


def test_place_falls_back_for_a_head_dim_not_a_multiple_of_32():
    from tilegraph.graph.passes.place import kernel_refusal

    step = _step(80)
    nodes = [n for n in step.nodes if n.op in ("attention", "attention_bwd")]
    assert nodes and all("head_dim 80 is not a multiple of 32" in kernel_refusal(n) for n in nodes)
    program = compile(step, Target(backend="emu"))
    assert {s.impl for s in program.steps if s.op.startswith("attention")} <= {"numpy", "reference"}
