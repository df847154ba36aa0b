"""Per-core performance model: what each RISC-V thread of each core did (tilegraph.perf.counters) -> time on a device.

Per core, three concurrent streams (FlashAttention.md 3.2: reader on RISC0, writer on RISC1, compute on the three
TRISCs, synchronised only through circular buffers):
- reader / writer: NoC bytes at one flit per cycle per NoC plus one header flit per packet [NOC], and the latency
  of every barrier, which the thread waits out;
- compute: unpack (TRISC0), math (TRISC1: FPU and SFPU) and pack (TRISC2) are themselves pipelined, so the slowest
  of the three, plus the configuration calls (inits / reconfigs), which stall the pipeline.
A core takes as long as its slowest stream when every CB between two streams holds at least two blocks (double
buffered); a CB that holds only one block makes its producer and consumer take turns, so their times add: that
bound is reported as "CB stall (CB i ...)". DRAM: all cores share the device's bandwidth, and a bank that serves more
pages than the others is served at 1/banks of it. The program takes the slowest core, or the DRAM time if longer.

Cost constants cite their source; the few that no public document gives are marked ASSUMPTION with the reason for
the value, and tests/test_perf_model.py checks the whole model against the published measurements in
tilegraph/perf/validation.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tilegraph.perf.counters import DRAM_PAGE_CLASSES, ThreadCounters
from tilegraph.perf.devices import Device

# ---------------------------------------------------------------- math (cycles per 32x32 tile)
# Fidelity phases: LoFi 1 .. HiFi4 4 (tech_reports/matrix_engine/matrix_engine.md "Math Fidelity").
PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
# Matmul: 8x16 x 16x16 per cycle = 16 cycles per 32x32x32 tile product per phase (GEMM_FLOPS.md "cycle_per_tile":
# LoFi 16, HiFi2 32, HiFi3 48, HiFi4 64).
MATMUL_CYCLES_PER_PHASE = 16
# Eltwise add/sub/mul: 8x16 values per cycle = 8 cycles per tile; mul once per phase (matrix_engine.md "Eltwise").
ELTWISE_CYCLES = 8
# Reduce: 16x16 per cycle = 4 cycles per tile; max has no phases, sum/avg once per phase (matrix_engine.md "Reduction").
REDUCE_CYCLES = 4
# copy_tile / transpose_tile: a datacopy through SrcA at the eltwise rate (ASSUMPTION: matrix_engine.md lists
# transpose_xy among the engine's ops without a rate; MOVA2D moves 8x16 per instruction like ELWADD).
COPY_CYCLES = 8
# SFPU: cycles per 32x32 tile of each op. Measured anchor: exp, from tenstorrent/tt-metal issue #55759 (Blackhole
# p100a, SDPA at llama 3.1 8B prefill, S 4096, q = k = 256 chunks, 64 cores, exp_approx_mode off): SFPU_COUNTER
# 442,996 cycles per core, where the kernel applies exp to every score tile: 8 Q chunks per core (32 heads x 16
# chunks / 64) x 8.5 K chunks each (causal, paired) x 64 score tiles = 4,352 tiles, so ~102 cycles per tile
# (the column-vector exps of the rescale and the final reciprocal are in the count too; they are ~5% of it).
# The other ops: ASSUMPTION, exp's cost scaled by the ratio of their LLK routines' instruction counts to exp's
# (rough counts of the non-approximate paths; no public measurement gives them).
SFPU_EXP_CYCLES_PER_TILE = 102
SFPU_INSTRUCTIONS = {"exp": 24, "exp_approx": 8, "exp2": 24, "recip": 20, "rsqrt": 24, "sqrt": 24, "sigmoid": 30, "silu": 32,
                     "tanh": 30, "log": 24, "gelu": 30, "power": 30}
SFPU_DEFAULT_INSTRUCTIONS = 4  # load, one arithmetic op, store, address increment
SFPU_CYCLES_PER_INSTRUCTION_FACE = SFPU_EXP_CYCLES_PER_TILE / 4 / SFPU_INSTRUCTIONS["exp"]
# Unpack / pack: ASSUMPTION, the unpackers and the packer move one NoC flit width per cycle (32 B on Wormhole, 64 B
# on Blackhole: Device.noc_bytes_per_cycle). The ISA documentation describes their pipelines but gives no
# throughput; the matmul rows of the validation table test this (bf16 at LoFi / HiFi2 is unpack-bound at this rate).
TILE_BYTES = {"float32": 4096, "bfloat16": 2048, "bfloat8_b": 1088, "other": 2048}
# A (re)configuration call (init, reconfig_data_format): ASSUMPTION, a few config-register writes that drain the
# pipeline: ~tens of cycles; 40 is used.
INIT_CYCLES = 40
# ---------------------------------------------------------------- data movement
# Per NoC packet: one header flit [NOC]. Per barrier: the round trip of the last transfer: ~5 + 9 per hop + 5
# cycles each way [NOC] over ~8 hops on average on an 8x8 / 13x10 torus, plus the DRAM controller's access time
# (ASSUMPTION: GDDR6 access ~100 ns, i.e. ~100-135 cycles). 300 cycles is used.
BARRIER_LATENCY_CYCLES = 300
MAX_PACKET_BYTES = {"wormhole_b0": 8192, "blackhole": 16384}  # 256 data flits per packet [NOC]
# ASSUMPTION (MULTICAST_CHARGED_ONCE): a multicast costs the sender what a unicast write of its bytes costs; the
# routers replicate the flits along the rectangle and the receivers' acks are not charged. The public sources say a
# multicast is one NoC operation (above) but give no cost per destination. Semaphore waits cost nothing by
# themselves: the time a core waits shows as the slower core it waits for.


@dataclass
class CoreTime:
    core: tuple[int, int]
    streams: dict[str, float]  # seconds: reader, writer, unpack, math, pack, compute (incl. inits)
    time_s: float
    bound: str


@dataclass
class Estimate:
    device: str
    time_s: float
    bound: str  # "compute", "unpack", "pack", "NoC (reader)", "NoC (writer)", "DRAM", "CB stall (CB i ...)"
    utilization: float  # useful matmul + eltwise work at the device's peak for the format and fidelity / time
    dram_bytes: int
    dram_time_s: float
    flops: float
    cores: list[CoreTime] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def time_us(self) -> float:
        return self.time_s * 1e6


def _sfpu_cycles(counts: Mapping[str, int]) -> float:
    total = 0.0
    for key, faces in counts.items():
        if key.startswith("sfpu.") and key.endswith(".faces"):
            op = key[len("sfpu."):-len(".faces")]
            total += faces * SFPU_CYCLES_PER_INSTRUCTION_FACE * SFPU_INSTRUCTIONS.get(op, SFPU_DEFAULT_INSTRUCTIONS)
    return total


def fpu_cycles(counts: Mapping[str, int]) -> float:
    """Matrix-engine cycles of one compute thread's FPU ops."""
    total = 0.0
    for key, n in counts.items():
        parts = key.split(".")
        if parts[0] != "fpu":
            continue
        kind = parts[1]
        phases = PHASES.get(parts[-1], 1)
        if kind == "matmul":
            total += n * MATMUL_CYCLES_PER_PHASE * phases
        elif kind in ("binary", "bcast"):
            total += n * ELTWISE_CYCLES * (phases if parts[2] == "mul" else 1)
        elif kind == "reduce":
            total += n * REDUCE_CYCLES * (phases if parts[2] == "sum" else 1)
        else:  # copy, transpose
            total += n * COPY_CYCLES
    return total


def math_flops(threads: Iterable[ThreadCounters]) -> float:
    """Useful floating-point work: 2*32^3 per matmul tile product, 1024 per eltwise / reduce tile."""
    flops = 0.0
    for t in threads:
        for key, n in t.counts.items():
            if key.startswith("fpu.matmul"):
                flops += n * 2 * 32**3
            elif key.startswith(("fpu.binary", "fpu.bcast", "fpu.reduce")):
                flops += n * 1024
    return flops


def peak_flops(device: Device, fidelity: str) -> float:
    """Matmul peak of the device's compute grid at `fidelity` (GEMM_FLOPS.md: 4096 flops/cycle/core at LoFi)."""
    return device.cores * device.clock_hz * 2 * 8 * 16 * 16 / PHASES[fidelity]


def _data_movement_cycles(t: ThreadCounters, device: Device) -> float:
    cycles = 0.0
    for kind in ("read.dram", "read.l1", "write.dram", "write.l1", "write.mcast"):
        nbytes = t.get(f"noc.{kind}.bytes")
        packets = t.get(f"noc.{kind}.n")
        packets = max(packets, math.ceil(nbytes / MAX_PACKET_BYTES[device.arch])) if nbytes else packets
        cycles += nbytes / device.noc_bytes_per_cycle + packets  # data flits + one header flit per packet
    # A multicast (noc.write.mcast, counted once by the sender with its destination count in .dests) leaves the
    # sender's NoC port once whatever the number of receivers: tt-metal's multicast lab (tt-metalium docs,
    # labs/matmul/lab3: "write the same data to multiple destination cores in a single NoC operation") and
    # MULTICAST_CHARGED_ONCE below. Semaphore increments (NoC atomics) are one header-only packet each.
    cycles += t.get("noc.atomic.n")
    barriers = t.get("noc.read_barrier") + t.get("noc.write_barrier")
    return cycles + barriers * BARRIER_LATENCY_CYCLES


def _compute_streams(t: ThreadCounters, device: Device) -> dict[str, float]:
    width = device.noc_bytes_per_cycle
    unpack = sum(n * TILE_BYTES[k.split(".", 1)[1]] for k, n in t.matching("unpack.").items()) / width
    pack = sum(n * TILE_BYTES[k.split(".", 1)[1]] for k, n in t.matching("pack.").items()) / width
    math_c = fpu_cycles(t.counts) + _sfpu_cycles(t.counts)
    inits = (t.get("init.fpu") + t.get("init.sfpu") + t.get("init.reconfig")) * INIT_CYCLES
    return {"unpack": unpack, "math": math_c, "pack": pack, "inits": inits,
            "compute": max(unpack, math_c, pack) + inits}


def single_buffered_cbs(threads: list[ThreadCounters], cb_pages: Mapping[int, int]) -> dict[int, tuple[str, str]]:
    """CBs (of one core) whose pages hold only one block of their producer or consumer: index -> (producer, consumer).

    A CB through which only one block passes in the whole run (a constant such as a reduce scaler, pushed once) is
    not counted: its producer and consumer never take turns on it."""
    producer, consumer, block, pushed = {}, {}, defaultdict(int), defaultdict(int)
    for t in threads:
        for key, n in t.counts.items():
            parts = key.split(".")
            if parts[0] != "cb":
                continue
            i = int(parts[1])
            if parts[2] == "pushed":
                producer[i] = t.role
                pushed[i] += n
            elif parts[2] == "popped":
                consumer[i] = t.role
            elif parts[2] in ("reserve_max", "wait_max"):
                block[i] = max(block[i], n)
    out = {}
    for i, (prod, cons) in ((i, (producer.get(i), consumer.get(i))) for i in producer):
        if cons and prod != cons and i in cb_pages and cb_pages[i] < 2 * block[i] and pushed[i] > block[i]:
            out[i] = (prod, cons)
    return out


def estimate(threads: list[ThreadCounters], device: Device, cb_pages: Mapping[tuple[int, int], Mapping[int, int]],
             fidelity: str, cb_names: Mapping[int, str] | None = None) -> Estimate:
    """Time of one program on one chip of `device` from its per-thread counters.

    `cb_pages[core][cb]` is the page count of each CB (ProgramDescription.cbs), `fidelity` the compute config's."""
    hz = device.clock_hz
    by_core: dict[tuple[int, int], list[ThreadCounters]] = defaultdict(list)
    for t in threads:
        by_core[t.core].append(t)
    dram_classes = [0] * DRAM_PAGE_CLASSES
    dram_cores = 0
    for t in threads:
        for k in range(DRAM_PAGE_CLASSES):
            dram_classes[k] += t.get(f"dram.page_class.{k}.bytes")
    for ts in by_core.values():
        dram_cores += any(t.get("noc.read.dram.bytes") or t.get("noc.write.dram.bytes") for t in ts)
    dram_bytes = sum(dram_classes)
    banks = [0] * device.dram_banks
    for k, b in enumerate(dram_classes):
        banks[k % device.dram_banks] += b
    dram_time = max(dram_bytes / device.dram_bytes_per_s, max(banks) / (device.dram_bytes_per_s / device.dram_banks))

    cores = []
    for core, ts in sorted(by_core.items()):
        streams: dict[str, float] = {"reader": 0.0, "writer": 0.0}
        for t in ts:
            if t.role == "compute":
                for k, v in _compute_streams(t, device).items():
                    streams[k] = streams.get(k, 0.0) + v / hz
            else:
                streams[t.role] = streams.get(t.role, 0.0) + _data_movement_cycles(t, device) / hz
        role_time = {"reader": streams["reader"], "writer": streams["writer"], "compute": streams.get("compute", 0.0)}
        time, bound = max((v, k) for k, v in role_time.items())
        for i, (prod, cons) in single_buffered_cbs(ts, cb_pages.get(core, {})).items():
            serial = role_time.get(prod, 0.0) + role_time.get(cons, 0.0)
            if serial > time:
                name = f" {cb_names[i]}" if cb_names and i in cb_names else ""
                time, bound = serial, f"CB stall (CB {i}{name}: single-buffered between {prod} and {cons})"
        if bound == "compute":
            bound = max(("math", "unpack", "pack"), key=lambda k: streams.get(k, 0.0))
            bound = "compute" if bound == "math" else bound
        elif bound in ("reader", "writer"):
            bound = f"NoC ({bound})"
        cores.append(CoreTime(core, streams, time, bound))
    slowest = max(cores, key=lambda c: c.time_s)
    time, bound = slowest.time_s, slowest.bound
    if dram_time > time:
        time, bound = dram_time, "DRAM"
    flops = math_flops(threads)
    util = flops / peak_flops(device, fidelity) / time if time > 0 else 0.0
    notes = []
    if dram_cores and dram_cores < device.cores:
        notes.append(f"{dram_cores} of {device.cores} cores move DRAM data")
    return Estimate(device.name, time, bound, util, dram_bytes, dram_time, flops, cores, notes)


def program_cb_pages(desc) -> dict[tuple[int, int], dict[int, int]]:
    """cb_pages for estimate() from a ProgramDescription."""
    from tilegraph.kernels.description import cores_of

    out: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for cb in desc.cbs:
        for core in cores_of(cb.core_ranges):
            out[tuple(core)][cb.index] = cb.num_pages
    return out
