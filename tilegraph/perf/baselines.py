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

from tilegraph.perf.counters import DRAM_PAGE_CLASSES, ThreadCounters, scale_counters
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


def double_buffered_cb_pages(threads: list[ThreadCounters]) -> dict[tuple[int, int], dict[int, int]]:
    """cb_pages for model.estimate of a built-in: every CB holds two of its largest blocks, as ttnn's program
    factories size their streamed CBs (in0 / in1 of the matmuls: 2 K blocks, GEMM_FLOPS.md)."""
    pages: dict[tuple[int, int], dict[int, int]] = {}
    for t in threads:
        for key, n in t.counts.items():
            if key.startswith("cb.") and key.endswith(("reserve_max", "wait_max")):
                cbs = pages.setdefault(t.core, {})
                i = int(key.split(".")[1])
                cbs[i] = max(cbs.get(i, 0), 2 * n)
    return pages


def streaming(out_tiles: int, reads_per_tile: float, device: Device, dtype: str = "bfloat16",
              fpu: str | None = "binary.mul", sfpu_ops: tuple[str, ...] = (), fidelity: str = "HiFi4",
              label: str = "ttnn eltwise", fpu_per_tile: float = 1.0) -> list[ThreadCounters]:
    """One ttnn eltwise / reduce op: output tiles spread over all cores; per output tile `reads_per_tile` input
    tiles from DRAM (2 for a binary op, 1 for a unary, W/32 for a row reduce, 1 + 32/W for a broadcast of a row or
    column vector read once per tile row), all unpacked, `fpu_per_tile` FPU ops per output tile (`fpu`, e.g.
    "binary.mul", "reduce.sum"; None for SFPU-only unary ops; W/32 for a reduce), the SFPU ops on the result, one
    tile packed per output tile (plus one per fused SFPU op: the fused activation is a second pass through DST)."""
    per = math.ceil(out_tiles / device.cores)
    threads = []
    for i in range(min(device.cores, out_tiles)):
        core = (i % device.grid[0], i // device.grid[0])
        r = ThreadCounters(core, "reader", f"{label} reader")
        w = ThreadCounters(core, "writer", f"{label} writer")
        c = ThreadCounters(core, "compute", label)
        reads = math.ceil(reads_per_tile * per)
        _dram(r, "read", reads, dtype)
        _add(r, "noc.read_barrier", per)
        _dram(w, "write", per, dtype)
        _add(w, "noc.write_barrier", per)
        _add(c, f"unpack.{dtype}", reads + per * len(sfpu_ops))
        if fpu:  # the fidelity suffix matters only for multiplies and sums (model.fpu_cycles)
            _add(c, f"fpu.{fpu}.{fidelity}", fpu_per_tile * per)
        for op in sfpu_ops:
            _add(c, f"sfpu.{op}.faces", 4 * per)
        _add(c, f"pack.{dtype}", per * (1 + len(sfpu_ops)))
        threads += [r, w, c]
    return threads


def eltwise_binary(elements: int, device: Device, dtype: str = "bfloat16", sfpu_op: str | None = None,
                   fidelity: str = "HiFi4") -> list[ThreadCounters]:
    """ttnn binary op (e.g. mul with SiLU fused on input a): tiles spread over all cores, two reads, one write."""
    tiles = _tiles(elements) if elements < TILE else math.ceil(elements / (TILE * TILE))
    return streaming(tiles, 2, device, dtype, "binary.mul", (sfpu_op,) if sfpu_op else (), fidelity,
                     "ttnn binary")


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
    """ttnn SDPA forward (FlashAttention.md; fidelity HiFi2 as its default program config's compute kernel).

    K / V: with causal masking every core reads each K and V chunk it needs from DRAM; without, the cores that work
    on one (batch, KV head) form a chain in which one core reads a chunk from DRAM and forwards it to the next over
    the NoC (tenstorrent/tt-metal issue #56691: the factory builds the K/V forwarding chains only for plain
    non-causal attention), so DRAM serves each chunk once per chain."""
    q_chunk, k_chunk = min(q_chunk, seq), min(k_chunk, seq)
    sq, sk, dt = _tiles(q_chunk), _tiles(k_chunk), _tiles(head_dim)
    nq, nk = math.ceil(seq / q_chunk), math.ceil(seq / k_chunk)
    work = batch * heads * nq  # q chunks
    per = math.ceil(work / device.cores)
    # causal with the low/high Q-chunk pairing: every core does the average number of K chunks per Q chunk
    kchunks = (nk + 1) / 2 if causal else nk
    chain = 1 if causal else max(1, min(device.cores, work) // (batch * kv_heads))  # cores sharing one KV head
    threads = []
    for i in range(min(device.cores, work)):
        core = (i % device.grid[0], i // device.grid[0])
        r = ThreadCounters(core, "reader", "ttnn sdpa reader")
        w = ThreadCounters(core, "writer", "ttnn sdpa writer")
        c = ThreadCounters(core, "compute", "ttnn sdpa")
        blocks = per * kchunks
        kv_tiles = blocks * 2 * sk * dt
        _dram(r, "read", per * sq * dt + math.ceil(kv_tiles / chain), dtype)
        if chain > 1:  # forwarded to the next core of the chain
            _add(r, "noc.write.l1.bytes", kv_tiles * (chain - 1) / chain * TILE_BYTES[dtype])
            _add(r, "noc.write.l1.n", blocks * 2 * (chain - 1) / chain)
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


# Backward kernels. ttnn 0.81.1 has no fused rms_norm backward, SDPA backward or SwiGLU backward
# (../shared/TT_FACTS.md), so each baseline is the chain of ttnn built-ins a trainer would run instead, one op per
# line below, every op reading its inputs from DRAM and writing its output back (as separate ttnn ops do).

def rms_norm_bwd(tokens: int, hidden: int, device: Device, dtype: str = "bfloat16",
                 fidelity: str = "HiFi4") -> list[list[ThreadCounters]]:
    """dx = rstd (g - xhat mean(g xhat)), dgamma = sum_rows(dy xhat), g = dy gamma, xhat = x rstd:
    square, mean, rsqrt(+eps), x*rstd, dy*gamma, g*xhat, mean, xhat*c, g-t, u*rstd, dy*xhat, sum over rows."""
    rows, wt = _tiles(tokens), _tiles(hidden)
    full, col = rows * wt, rows
    bcast = 1 + 1 / wt  # a [T, 1] column read once per tile row
    return [
        streaming(full, 1, device, dtype, None, ("square",), fidelity, "ttnn.square"),
        streaming(col, wt, device, dtype, "reduce.sum", (), fidelity, "ttnn.mean", fpu_per_tile=wt),
        streaming(col, 1, device, dtype, "binary.add", ("rsqrt",), fidelity, "ttnn.rsqrt(+eps)"),
        streaming(full, bcast, device, dtype, "bcast.mul", (), fidelity, "ttnn.mul (x * rstd)"),
        streaming(full, 1 + 1 / rows, device, dtype, "bcast.mul", (), fidelity, "ttnn.mul (dy * gamma)"),
        streaming(full, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (g * xhat)"),
        streaming(col, wt, device, dtype, "reduce.sum", (), fidelity, "ttnn.mean", fpu_per_tile=wt),
        streaming(full, bcast, device, dtype, "bcast.mul", (), fidelity, "ttnn.mul (xhat * c)"),
        streaming(full, 2, device, dtype, "binary.sub", (), fidelity, "ttnn.sub"),
        streaming(full, bcast, device, dtype, "bcast.mul", (), fidelity, "ttnn.mul (* rstd)"),
        streaming(full, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (dy * xhat)"),
        streaming(wt, rows, device, dtype, "reduce.sum", (), fidelity, "ttnn.sum (rows)", fpu_per_tile=rows),
    ]


def swiglu_bwd_finish(m: int, k: int, f: int, device: Device, dtype: str = "bfloat16",
                      fidelity: str = "HiFi2") -> list[list[ThreadCounters]]:
    """dx = da W1^T + db W3^T, dW1 = x^T da, dW3 = x^T db: four ttnn.matmul and an add (ours runs these too:
    SwiGLUBwdKernel.device_finish)."""
    return [matmul_2d(m, f, k, device, dtype, fidelity), matmul_2d(m, f, k, device, dtype, fidelity),
            streaming(_tiles(m) * _tiles(k), 2, device, "float32", "binary.add", (), fidelity, "ttnn.add"),
            matmul_2d(k, m, f, device, dtype, fidelity), matmul_2d(k, m, f, device, dtype, fidelity)]


def swiglu_bwd(m: int, k: int, f: int, device: Device, dtype: str = "bfloat16",
               fidelity: str = "HiFi2") -> list[list[ThreadCounters]]:
    """a = x W1, b = x W3 (two ttnn.linear), db = dh * silu(a) (one ttnn.mul with SiLU fused), g = dh * b,
    da = silu_bw(g, a) = g * sigmoid(a) * (1 + a (1 - sigmoid(a))) (sigmoid, 1 - s, a * t + 1 fused as one
    mul-add, two muls), then the four matmuls and the add of swiglu_bwd_finish."""
    mf = _tiles(m) * _tiles(f)
    gate = [
        matmul_2d(m, k, f, device, dtype, fidelity), matmul_2d(m, k, f, device, dtype, fidelity),
        streaming(mf, 2, device, dtype, "binary.mul", ("silu",), fidelity, "ttnn.mul (dh * silu(a))"),
        streaming(mf, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (dh * b)"),
        streaming(mf, 1, device, dtype, None, ("sigmoid",), fidelity, "ttnn.sigmoid"),
        streaming(mf, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (a * (1 - s))"),
        streaming(mf, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (g * s)"),
        streaming(mf, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (* (1 + a (1 - s)))"),
    ]
    return gate + swiglu_bwd_finish(m, k, f, device, dtype, fidelity)


def attention_bwd(batch: int, heads: int, kv_heads: int, seq: int, head_dim: int, device: Device,
                  dtype: str = "bfloat16", fidelity: str = "HiFi2") -> list[list[ThreadCounters]]:
    """The unfused backward with ttnn built-ins, per (batch, head) as batched ttnn.matmul over the batch x heads
    (K, V repeated to the query heads first): S = Q K^T, P = softmax(scale S + mask) (ttnn.softmax, fused:
    one read, one write of S), dP = dO V^T, D = rowsum(dO * O) (mul + sum), dS = P * (dP - D) * scale
    (sub with the D column broadcast, mul), dQ = dS K, dK = dS^T Q, dV = P^T dO; the S x S intermediates
    live in DRAM (causal masking does not skip any of the matmuls' work)."""
    bh = batch * heads
    st, dt = _tiles(seq), _tiles(head_dim)
    ss, sd = bh * st * st, bh * st * dt

    def batched(m, k, n):  # bh independent products, one after another on the whole grid
        return scale_counters(matmul_2d(m, k, n, device, dtype, fidelity), bh)

    return [
        batched(seq, head_dim, seq),  # S = Q K^T
        streaming(ss, 1, device, dtype, "reduce.max", ("exp",), fidelity, "ttnn.softmax", fpu_per_tile=3),
        batched(seq, head_dim, seq),  # dP = dO V^T
        streaming(sd, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (dO * O)"),
        streaming(bh * st, dt, device, dtype, "reduce.sum", (), fidelity, "ttnn.sum", fpu_per_tile=dt),
        streaming(ss, 1 + 1 / st, device, dtype, "bcast.sub", (), fidelity, "ttnn.sub (dP - D)"),
        streaming(ss, 2, device, dtype, "binary.mul", (), fidelity, "ttnn.mul (P * . * scale)"),
        batched(seq, seq, head_dim),  # dQ = dS K
        batched(seq, seq, head_dim),  # dK = dS^T Q
        batched(seq, seq, head_dim),  # dV = P^T dO
    ]
