"""Device side of the swiglu op: its tt-metal program description (kernels in this folder).

Moved from the end of ops/swiglu.py.
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op

from tilegraph.errors import ShapeError

SWIGLU_MAX_K_BLOCK_TILES = 8  # K tiles per reader push; 2 blocks per input CB keep reader and compute overlapped


# Output block candidates (tiles), within description.L1_CB_BUDGET; see _choose_layout.
SWIGLU_BLOCK_CANDIDATES = (1, 2, 4, 8)


def _swiglu_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb):
    cbs = [_prog.CBSpec(index=0, data_format=dtype, num_pages=2 * mb * kb, core_ranges=ranges)]
    cbs += [_prog.CBSpec(index=i, data_format=weight_dtype, num_pages=2 * kb * nb, core_ranges=ranges) for i in (1, 2)]
    cbs.append(_prog.CBSpec(index=16, data_format=out_dtype, num_pages=2, core_ranges=ranges))
    if kt > kb:  # partial sums between K blocks
        cbs += [_prog.CBSpec(index=i, data_format="float32", num_pages=mb * nb, core_ranges=ranges) for i in (24, 25)]
    return cbs


# Cycles per output tile and K tile, for choosing the layout (n150-derived: the builder does not know the device):
# the two HiFi4 tile matmuls (2 x 64 cycles, tech_reports/GEMM_FLOPS/GEMM_FLOPS.md); a 2 KB tile over a core's NoC
# port at 32 B/cycle (Wormhole, tilegraph/perf/devices.py); a 2 KB tile from DRAM at the chip's 288 GB/s at 1 GHz
# (../shared/TT_FACTS.md), shared by all cores.
SWIGLU_MATH_CYCLES_PER_K_TILE = 128
SWIGLU_NOC_CYCLES_PER_TILE = 2048 / 32
SWIGLU_DRAM_CYCLES_PER_TILE = 2048 / 288
# Cores per W multicast group (a column segment of the grid; 1 = every core reads its own W tiles).
SWIGLU_GROUP_CANDIDATES = (1, 2, 4, 8)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def swiglu_layout(mt: int, nt: int, mb: int, nb: int, group: int, grid) -> tuple[int, int, int, int, int]:
    """(blocks_m, blocks_n, columns, parts, rounds) of the multicast layout (swiglu_common.h): columns x parts
    groups of `group` cores, each a column segment of the grid; group (c, p) takes block columns c, c + columns,
    ... and part p of their block rows, `rounds` rounds each (every member does every round)."""
    blocks_m, blocks_n = _cdiv(mt, mb), _cdiv(nt, nb)
    most = grid[0] * (grid[1] // group)  # groups that fit the grid
    columns = min(blocks_n, most)
    parts = max(1, min(most // columns, _cdiv(blocks_m, group)))  # fewer block columns than groups: split rows
    return blocks_m, blocks_n, columns, parts, _cdiv(blocks_m, group * parts)


def swiglu_slots_per_core(mt: int, nt: int, mb: int, nb: int, group: int, grid) -> int:
    """Block slots every core of a group goes through (its blocks, plus rounds without one at the M edge)."""
    _, blocks_n, columns, _, rounds = swiglu_layout(mt, nt, mb, nb, group, grid)
    return _cdiv(blocks_n, columns) * rounds


def _layout_cost(mt, nt, mb, nb, group, grid):
    """(cycles per K tile of the slowest resource, DRAM tiles read per K tile): the busiest core's matmuls, its
    sender's NoC port (x and W reads, and the W multicasts, each leaving the port once), and the chip's DRAM
    (x once per block column, W once per group round)."""
    blocks_m, blocks_n, columns, _, rounds = swiglu_layout(mt, nt, mb, nb, group, grid)
    slots = _cdiv(blocks_n, columns) * rounds
    rows, cols = min(mb, mt), min(nb, nt)
    w_moves = 2 * cols * (2 if group > 1 else 1)  # read, then multicast
    dram_tiles = blocks_n * mt + 2 * nt * _cdiv(blocks_m, group)  # W: once per used group round
    cost = max(slots * rows * cols * SWIGLU_MATH_CYCLES_PER_K_TILE,
               slots * (rows + w_moves) * SWIGLU_NOC_CYCLES_PER_TILE,
               dram_tiles * SWIGLU_DRAM_CYCLES_PER_TILE)
    return cost, dram_tiles


def _choose_layout(mt, nt, kt, kb, grid, cb_bytes, block=None, group=None):
    """Output block (mb, nb) and multicast group size within the L1 budget: the least time of the slowest
    resource (_layout_cost), then fewer DRAM reads, then smaller groups (less waiting on the slowest member)."""
    best = None
    blocks = [block] if block else [(mb, nb) for mb in SWIGLU_BLOCK_CANDIDATES for nb in SWIGLU_BLOCK_CANDIDATES]
    groups = [group] if group else SWIGLU_GROUP_CANDIDATES
    for mb, nb in blocks:
        if not block and ((mb > 1 and mb // 2 >= mt) or (nb > 1 and nb // 2 >= nt)):
            continue
        if cb_bytes(mb, nb) > _prog.L1_CB_BUDGET:
            continue
        for g in groups:
            if g > grid[1] or (g > 1 and g > _cdiv(mt, mb)):  # a group needs a block row per member
                continue
            cost, dram = _layout_cost(mt, nt, mb, nb, g, grid)
            key = (cost, dram, g, -mb)
            if best is None or key < best[0]:
                best = (key, mb, nb, g)
    if best is None:
        raise ShapeError(f"op 'swiglu': no output block {block or ''} / multicast group {group or ''} fits a "
                         f"{grid[0]}x{grid[1]} grid within {_prog.L1_CB_BUDGET} bytes of CBs")
    return best[1], best[2], best[3]


def swiglu_program(
    m: int,
    k: int,
    n: int,
    dtype: str = "bfloat16",
    *,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    weight_dtype: str | None = None,
    max_k_block: int = SWIGLU_MAX_K_BLOCK_TILES,
    max_n_block: int | None = None,
    block: tuple[int, int] | None = None,
    group: int | None = None,
    math_fidelity: str = "HiFi4",
) -> _prog.ProgramDescription:
    """Fused SwiGLU out[M, N] = silu(x W1) * (x W3) for x [M, K], W1/W3 [K, N]; output blocks split over the grid.

    The output tiles are cut into mb x nb blocks (`block`); groups of `group` cores (a column segment of the grid)
    share block columns: the group's first core reads each W1 / W3 K block from DRAM once and multicasts it to the
    others, which take the block rows in rounds (swiglu_common.h). Both default to _choose_layout. Each block is
    computed K block by K block from one read of its x and W tiles, reused from L1 for every output subblock (one
    row of up to w = min(max_n_block, DST/2) tiles, both matmuls accumulating in DST); fp32 partial sums wait in L1
    between K blocks (reloaded exactly). The gate is applied in DST, so the [M, N] gate/up products never reach
    DRAM. Zero padding of M, K, N to tiles contributes nothing (silu(0) * 0 = 0).
    weight_dtype: device format of W1 / W3 (default: dtype), e.g. bfloat8_b weights with bfloat16 activations.
    math_fidelity: of the matmuls (HiFi4 by default; the fuzz bounds carry the term of the phases a lower fidelity
    leaves out, runtime/fuzz.py fidelity_error)."""
    m, k, n = int(m), int(k), int(n)
    weight_dtype = weight_dtype or dtype
    if min(m, k, n) < 1:
        raise ShapeError(f"op 'swiglu': M={m}, K={k}, N={n} must all be >= 1")
    mt, kt, nt = _host.tiles(m), _host.tiles(k), _host.tiles(n)
    kb = _host.largest_divisor_at_most(kt, max_k_block)
    config = _prog.ComputeConfig(math_fidelity=math_fidelity, fp32_dest_acc_en=True,
                                 unpack_to_dest_fp32=(24, 25) if kt > kb else ())  # exact reload of partials
    w = max(1, min(nt, config.dst_tiles // 2, max_n_block or nt))

    def cb_bytes(mb, nb):
        return sum(c.num_pages * c.page_size for c in _swiglu_cbs((), dtype, weight_dtype, out_dtype, kt, kb, mb, nb))

    mb, nb, group = _choose_layout(mt, nt, kt, kb, tuple(grid), cb_bytes, block, group)
    blocks_m, blocks_n, columns, parts, _ = swiglu_layout(mt, nt, mb, nb, group, grid)
    groups = columns * parts
    per_column = grid[1] // group

    def core_of(g: int, member: int) -> tuple[int, int]:
        return (g // per_column, (g % per_column) * group + member)

    cores = [core_of(g, s) for g in range(groups) for s in range(group)]
    ranges = _host.core_ranges(sorted(cores, key=lambda c: (c[1], c[0])))
    tensors = [_prog.TensorSpec("x", (m, k), dtype), _prog.TensorSpec("w1", (k, n), weight_dtype),
               _prog.TensorSpec("w3", (k, n), weight_dtype), _prog.TensorSpec("out", (m, n), out_dtype, "output")]
    cbs = _swiglu_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb)
    addr, cta, nx, ny = _prog.BufferAddress, _prog.TensorAccessorCTA, _prog.NocX, _prog.NocY
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for g in range(groups):
        sender, last = core_of(g, 0), core_of(g, group - 1)
        for s in range(group):
            core = core_of(g, s)
            lay = (blocks_m, blocks_n, g % columns, columns, g // columns, parts, s, group)
            reader_rt[core] = (*lay, addr("x"), addr("w1"), addr("w3"), kt, mt, nt, kb, mb, nb,
                               nx(sender), ny(sender), nx(sender), ny(sender), nx(last), ny(last))
            compute_rt[core] = (*lay, kt, mt, nt, kb, mb, nb, w)
            writer_rt[core] = (*lay, addr("out"), mt, nt, mb, nb)
    kernels = [
        _prog.KernelSpec("reader", "swiglu/reader.cpp", ranges, (cta("x"), cta("w1"), cta("w3")), {}, reader_rt),
        _prog.KernelSpec("compute", "swiglu/compute.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "swiglu/writer.cpp", ranges, (cta("out"),), {}, writer_rt),
    ]
    # sem_w_ready / sem_w_valid of swiglu_common.h (ids = indices), on every core: senders count ready members on
    # the first, members wait on the second, and the sender's own copy of it is the multicast's source word.
    semaphores = [_prog.SemaphoreSpec(ranges, 0), _prog.SemaphoreSpec(ranges, 0)]
    return _prog.ProgramDescription(
        name="swiglu", tensors=tensors, cbs=cbs, kernels=kernels,
        compute_config=config, grid=tuple(grid), semaphores=semaphores)


def gate_up_fidelity_error(desc: _prog.ProgramDescription) -> float:
    """runtime/fuzz.py fidelity_error of the x W products of a swiglu (or swiglu gate backward) program, as the
    program runs them: in1 = W in SrcA, in0 = x in SrcB, at its compute config's fidelity."""
    from tilegraph.runtime.fuzz import fidelity_error

    return fidelity_error(desc.tensor("w1").dtype, desc.tensor("x").dtype, desc.compute_config.math_fidelity)


def swiglu_device_inputs(x, w1, w3) -> dict:
    return {"x": x.reshape(-1, x.shape[-1]), "w1": w1, "w3": w3}


def swiglu_device_outputs(outputs: dict, x_shape) -> list:
    out = outputs["out"]
    return [out.reshape(tuple(x_shape[:-1]) + (out.shape[-1],))]


@register_kernel_op
class SwiGLUKernel(KernelOp):
    name = "swiglu"

    def program(self, inputs, attrs, opts):
        knobs = dict(opts.knobs)
        x, w1, w3 = inputs
        m = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        desc = swiglu_program(m, w1.shape[0], w1.shape[1], opts.dtype, grid=opts.grid, **knobs)
        return desc, swiglu_device_inputs(x, w1, w3)

    def unpack(self, outputs, inputs, attrs):
        return swiglu_device_outputs(dict(outputs), inputs[0].shape)

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **common,
            "m": st.integers(1, 70), "k": st.integers(1, 200), "n": st.integers(1, 70), "max_k_block": st.integers(1, 8),
            "max_n_block": st.integers(1, 2),
            "weight_dtype": st.sampled_from([None, "bfloat8_b"]),  # None: the weights take `dtype` too
            "group": st.sampled_from([None, 1, 2]),  # W multicast group (None: the builder's choice)
            "math_fidelity": st.sampled_from(["HiFi4", "HiFi2"]),
        })

    def make_inputs(self, case, rng, randn, grid):
        x = randn(case["m"], case["k"])
        w1 = (rng.standard_normal((case["k"], case["n"])) / math.sqrt(case["k"])).astype(np.float32)
        w3 = (rng.standard_normal((case["k"], case["n"])) / math.sqrt(case["k"])).astype(np.float32)
        knobs = {"max_k_block": case["max_k_block"], "max_n_block": case.get("max_n_block"),
                 "weight_dtype": case.get("weight_dtype"), "math_fidelity": case.get("math_fidelity", "HiFi4")}
        if case.get("group"):
            # At most the grid's rows and the block rows (1-tile blocks): the builder rejects a larger group.
            knobs["group"] = min(case["group"], grid[1], -(-case["m"] // 32))
        return [x, w1, w3], {}, DeviceOptions(case["dtype"], grid, knobs)

    def input_formats(self, dtype, count, knobs):
        weights = knobs.get("weight_dtype") or dtype  # bfloat8_b weights with bfloat16 activations, or both dtype
        return [dtype, weights, weights]

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING

        rnd = OUT_ROUNDING[backend]
        x, w1, w3 = x64
        k = x.shape[-1]
        a, b = x @ w1, x @ w3
        unit = k * ACCUM_UNIT
        if backend != "numpy":
            # lane alignment, and the partial products the fidelity's phases leave out (one-sided, relative to
            # |x| |W|), at the fidelity and formats of the program this call ran
            desc, _ = self.program(x64, attrs, opts or DeviceOptions())
            unit += MVMUL_ALIGN + gate_up_fidelity_error(desc)
        ea, eb = unit * (np.abs(x) @ np.abs(w1)), unit * (np.abs(x) @ np.abs(w3))
        # d(silu(a) b) <= |silu'(a)| |b| ea + |silu(a)| eb with |silu'| <= 1.1 and |silu(a)| <= |a|.
        return [rnd * np.abs(refs[0]) + 1.1 * np.abs(b) * ea + np.abs(a) * eb + 1e-30]
