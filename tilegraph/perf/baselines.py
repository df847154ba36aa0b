"""ttnn's built-in kernels, as per-thread counters built from their known structure (no card needed).

Modelled, not measured: each function writes down what one core of tt-metal's kernel does, from the structure its
sources and tech reports describe, in the same counters the emulator records for our kernels, so the same
model (tilegraph.perf.model) times both.
- matmul_2d: ttnn's 2-D multicast matmul (MatmulMultiCoreReuseMultiCastProgramConfig; GEMM_FLOPS.md): the output is
  split over the grid, in0 (activations) is read from DRAM by the first core of each row and multicast along the
  row, in1 (weights) by the first core of each column and multicast down it; every core multiplies with
  out_subblock_h x out_subblock_w subblocks (in0 unpacked once per subblock column, in1 once per subblock row) and
  accumulates over K blocks in L1 (packer_l1_acc).
- rms_norm: ttnn's layernorm kernel with RMSNORM defined (../shared/TT_FACTS.md): tile rows spread over the cores;
  per row x^2, a row reduce, eps + rsqrt, a column-broadcast multiply and a row-broadcast multiply by gamma.
- sdpa: ttnn.transformer.scaled_dot_product_attention (tech_reports/FlashAttention/FlashAttention.md): Q chunks over
  cores, K/V chunks streamed from DRAM per Q chunk, online softmax; causal skips blocks above the diagonal.
- swiglu: two matmul_2d (x W1, x W3) and one eltwise multiply with SiLU fused on the first input (three ops).
"""

from __future__ import annotations

import math

from tilegraph.perf.counters import DRAM_PAGE_CLASSES, ThreadCounters
from tilegraph.perf.devices import Device

TILE = 32
TILE_BYTES = {"float32": 4096, "bfloat16": 2048, "bfloat8_b": 1088}


def _tiles(n: int) -> int:
    return -(-n // TILE)


def _dram(t: ThreadCounters, direction: str, tiles: int, dtype: str) -> None:
    """`tiles` pages of `dtype` read from / written to DRAM, spread evenly over the banks (interleaved)."""
    if tiles <= 0:
        return
    nbytes = tiles * TILE_BYTES[dtype]
    t.counts[f"noc.{direction}.dram.bytes"] = t.get(f"noc.{direction}.dram.bytes") + nbytes
    t.counts[f"noc.{direction}.dram.n"] = t.get(f"noc.{direction}.dram.n") + tiles
    for k in range(DRAM_PAGE_CLASSES):
        key = f"dram.page_class.{k}.bytes"
        t.counts[key] = t.get(key) + nbytes // DRAM_PAGE_CLASSES


def _dram_pages(t: ThreadCounters, direction: str, first: int, count: int, dtype: str) -> None:
    """Pages first .. first + count - 1 of one tensor: page i sits in bank i % banks (interleaved from bank 0),
    so a small tensor every core reads (gamma) loads only its own few banks."""
    nbytes = TILE_BYTES[dtype]
    t.counts[f"noc.{direction}.dram.bytes"] = t.get(f"noc.{direction}.dram.bytes") + count * nbytes
    t.counts[f"noc.{direction}.dram.n"] = t.get(f"noc.{direction}.dram.n") + count
    for page in range(first, first + count):
        key = f"dram.page_class.{page % DRAM_PAGE_CLASSES}.bytes"
        t.counts[key] = t.get(key) + nbytes


def _add(t: ThreadCounters, key: str, n: float) -> None:
    t.counts[key] = t.get(key) + round(n)


def _subblock(per_core_m: int, per_core_n: int, dst_tiles: int) -> tuple[int, int]:
    """The out_subblock (h, w) a tuned config picks: fits DST, divides the block, fewest operand unpacks."""
    fits = [(h, w) for h in range(1, per_core_m + 1) for w in range(1, per_core_n + 1)
            if per_core_m % h == 0 and per_core_n % w == 0 and h * w <= dst_tiles]
    return min(fits, key=lambda hw: (1 / hw[0] + 1 / hw[1], -hw[1]))  # fewest unpacks per product


def matmul_2d(m: int, k: int, n: int, device: Device, dtype: str = "bfloat16", fidelity: str = "HiFi4",
              in0_block_w: int = 4, dst_tiles: int = 8, grid: tuple[int, int] | None = None) -> list[ThreadCounters]:
    gx, gy = grid or device.grid
    mt, kt, nt = _tiles(m), _tiles(k), _tiles(n)
    pm, pn = math.ceil(mt / gy), math.ceil(nt / gx)
    sh, sw = _subblock(pm, pn, dst_tiles)
    bw = max(1, min(in0_block_w, kt))
    kblocks = math.ceil(kt / bw)
    threads = []
    rows_used, cols_used = math.ceil(mt / pm), math.ceil(nt / pn)
    for y in range(rows_used):
        for x in range(cols_used):
            r = ThreadCounters((x, y), "reader", "ttnn matmul in0")
            w = ThreadCounters((x, y), "writer", "ttnn matmul in1 + out")
            c = ThreadCounters((x, y), "compute", "ttnn matmul")
            if x == 0:  # in0 sender of this row: DRAM read + multicast along the row
                _dram(r, "read", pm * kt, dtype)
                _add(r, "noc.write.mcast.bytes", pm * kt * TILE_BYTES[dtype])
                _add(r, "noc.write.mcast.n", kblocks)
                _add(r, "noc.write.mcast.dests", kblocks * (cols_used - 1))
                _add(r, "noc.read_barrier", kblocks)
                _add(r, "noc.write_barrier", kblocks)
            if y == 0:  # in1 sender of this column
                _dram(w, "read", pn * kt, dtype)
                _add(w, "noc.write.mcast.bytes", pn * kt * TILE_BYTES[dtype])
                _add(w, "noc.write.mcast.n", kblocks)
                _add(w, "noc.write.mcast.dests", kblocks * (rows_used - 1))
                _add(w, "noc.read_barrier", kblocks)
                _add(w, "noc.write_barrier", kblocks)
            _dram(w, "write", pm * pn, dtype)
            _add(w, "noc.write_barrier", 1)
            products = pm * pn * kt
            _add(c, f"fpu.matmul.{fidelity}", products)
            _add(c, f"unpack.{dtype}", products / sw + products / sh)
            _add(c, f"pack.{dtype}", pm * pn * kblocks)  # partials accumulated in L1 by the packer
            _add(c, "init.fpu", 1)
            # CBs: in0 / in1 double-buffered (2 K blocks), out one block: recorded for the CB-stall rule
            _add(r, "cb.0.pushed", pm * kt)
            _add(r, "cb.0.reserve_max", pm * bw)
            _add(c, "cb.0.popped", pm * kt)
            _add(c, "cb.0.wait_max", pm * bw)
            _add(w, "cb.1.pushed", pn * kt)
            _add(w, "cb.1.reserve_max", pn * bw)
            _add(c, "cb.1.popped", pn * kt)
            _add(c, "cb.1.wait_max", pn * bw)
            threads += [r, w, c]
    return threads


def matmul_2d_cb_pages(m, k, n, device, in0_block_w=4, grid=None):
    gx, gy = grid or device.grid
    mt, kt, nt = _tiles(m), _tiles(k), _tiles(n)
    pm, pn = math.ceil(mt / gy), math.ceil(nt / gx)
    bw = max(1, min(in0_block_w, kt))
    pages = {0: 2 * pm * bw, 1: 2 * pn * bw}
    return {(x, y): pages for y in range(gy) for x in range(gx)}


def eltwise_binary(elements: int, device: Device, dtype: str = "bfloat16", sfpu_op: str | None = None,
                   fidelity: str = "HiFi4") -> list[ThreadCounters]:
    """ttnn binary op (e.g. mul with SiLU fused on input a): tiles spread over all cores, two reads, one write."""
    tiles = _tiles(elements) if elements < TILE else math.ceil(elements / (TILE * TILE))
    per = math.ceil(tiles / device.cores)
    threads = []
    for i in range(min(device.cores, tiles)):
        core = (i % device.grid[0], i // device.grid[0])
        r = ThreadCounters(core, "reader", "ttnn binary reader")
        w = ThreadCounters(core, "writer", "ttnn binary writer")
        c = ThreadCounters(core, "compute", "ttnn binary")
        _dram(r, "read", 2 * per, dtype)
        _add(r, "noc.read_barrier", per)
        _dram(w, "write", per, dtype)
        _add(w, "noc.write_barrier", per)
        _add(c, f"unpack.{dtype}", 2 * per + (per if sfpu_op else 0))
        _add(c, f"fpu.binary.mul.{fidelity}", per)
        if sfpu_op:
            _add(c, f"sfpu.{sfpu_op}.faces", 4 * per)
            _add(c, f"pack.{dtype}", per)
        _add(c, f"pack.{dtype}", per)
        threads += [r, w, c]
    return threads


def rms_norm(tokens: int, hidden: int, device: Device, dtype: str = "bfloat16",
             fidelity: str = "HiFi4") -> list[ThreadCounters]:
    rows, wt = _tiles(tokens), _tiles(hidden)
    per = math.ceil(rows / device.cores)
    threads = []
    for i in range(min(device.cores, rows)):
        core = (i % device.grid[0], i // device.grid[0])
        r = ThreadCounters(core, "reader", "ttnn layernorm reader")
        w = ThreadCounters(core, "writer", "ttnn layernorm writer")
        c = ThreadCounters(core, "compute", "ttnn layernorm (RMSNORM)")
        _dram(r, "read", per * wt, dtype)  # x rows
        _dram_pages(r, "read", 0, wt, "bfloat16")  # gamma, once per core
        _add(r, "noc.read_barrier", per * 2)
        _dram(w, "write", per * wt, dtype)
        _add(w, "noc.write_barrier", per)
        _add(c, f"fpu.binary.mul.{fidelity}", per * wt)  # x^2
        _add(c, f"fpu.reduce.sum.{fidelity}", per * wt)
        _add(c, "fpu.binary.add", per)  # + eps
        _add(c, "sfpu.rsqrt.faces", per * 4)
        _add(c, f"fpu.bcast.mul.{fidelity}", 2 * per * wt)  # x * rstd, * gamma
        _add(c, f"unpack.{dtype}", per * (2 * wt + wt + 2 * wt + 2 * wt + 2))
        _add(c, f"pack.{dtype}", per * (wt + 1 + wt + wt + 1))
        _add(c, "init.fpu", per * 5)
        threads += [r, w, c]
    return threads


def sdpa(batch: int, heads: int, kv_heads: int, seq: int, head_dim: int, device: Device, dtype: str = "bfloat16",
         fidelity: str = "HiFi2", causal: bool = True, q_chunk: int = 256, k_chunk: int = 256) -> list[ThreadCounters]:
    """ttnn SDPA forward (FlashAttention.md; fidelity HiFi2 as its default program config's compute kernel)."""
    q_chunk, k_chunk = min(q_chunk, seq), min(k_chunk, seq)
    sq, sk, dt = _tiles(q_chunk), _tiles(k_chunk), _tiles(head_dim)
    nq, nk = math.ceil(seq / q_chunk), math.ceil(seq / k_chunk)
    work = batch * heads * nq  # q chunks
    per = math.ceil(work / device.cores)
    # causal with the low/high Q-chunk pairing: every core does the average number of K chunks per Q chunk
    kchunks = (nk + 1) / 2 if causal else nk
    threads = []
    for i in range(min(device.cores, work)):
        core = (i % device.grid[0], i // device.grid[0])
        r = ThreadCounters(core, "reader", "ttnn sdpa reader")
        w = ThreadCounters(core, "writer", "ttnn sdpa writer")
        c = ThreadCounters(core, "compute", "ttnn sdpa")
        blocks = per * kchunks
        _dram(r, "read", per * sq * dt + blocks * 2 * sk * dt, dtype)
        _add(r, "noc.read_barrier", per + blocks * 2)
        _dram(w, "write", per * sq * dt, dtype)
        _add(w, "noc.write_barrier", per)
        _add(c, f"fpu.matmul.{fidelity}", blocks * (sq * sk * dt + sq * dt * sk))
        _add(c, "fpu.reduce.max", blocks * sq * sk)
        _add(c, "fpu.bcast.sub", blocks * sq * sk)
        _add(c, "sfpu.exp.faces", blocks * sq * sk * 4)
        _add(c, f"fpu.reduce.sum.{fidelity}", blocks * sq * sk)
        _add(c, f"fpu.bcast.mul.{fidelity}", blocks * sq * dt)  # rescale the accumulator
        _add(c, "fpu.binary.add", blocks * sq * dt)
        _add(c, "sfpu.exp.faces", blocks * sq * 4)  # alpha
        unp = blocks * (sq * sk * 2 + sq * dt + sk * dt + sq * sk * 3 + 2 * sq * dt)
        _add(c, f"unpack.{dtype}", unp)
        _add(c, f"pack.{dtype}", blocks * (sq * sk * 2 + sq * dt * 2 + 2 * sq))
        _add(c, "init.fpu", blocks * 8)
        threads += [r, w, c]
    return threads
