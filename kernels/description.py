"""Program descriptions: what a custom-kernel program builder produces, and what every consumer reads.

One `ProgramDescription` says everything a tt-metal program needs: the core grid and which cores run which kernel,
the circular buffers (index, data format, page size, pages), the DRAM tensors (tile layout, interleaved pages),
compile-time args, defines, per-core runtime args and the compute config. It is consumed by
- the emulator (`tilegraph.runtime.emulator.run_program`): kernels compiled for the host, run as threads per core;
- the ttnn backend (`runtime/ttnn_program.py`): turned into a `ttnn.ProgramDescriptor` for `ttnn.generic_op`;
- the cost / memory checks (`ProgramDescription.l1_bytes_per_core`).

Buffer addresses and TensorAccessor compile-time args are not known when a program is described (they depend on
where the consumer allocates the tensors), so runtime and compile-time arg lists may hold two placeholders:
- `BufferAddress("x")` in runtime args: the DRAM address of tensor "x" (one uint32 word);
- `TensorAccessorCTA("x")` in compile-time args: `TensorAccessorArgs` of tensor "x", which for an interleaved
  DRAM tensor is two words `[ArgConfig::IsDram (=2), aligned page size]` (tt-metal 0.81.1 tensor_accessor_args.h).
Consumers resolve them with `resolve_args`.

Example (a copy kernel over two cores)::

    from tilegraph.kernels.description import *
    cores = CoreRange((0, 0), (1, 0))
    desc = ProgramDescription(
        name="copy",
        tensors=[TensorSpec("x", (64, 64), "bfloat16", "input"), TensorSpec("y", (64, 64), "bfloat16", "output")],
        cbs=[CBSpec(index=0, data_format="bfloat16", num_pages=2, core_ranges=(cores,)),
             CBSpec(index=16, data_format="bfloat16", num_pages=2, core_ranges=(cores,))],
        kernels=[
            KernelSpec("reader", "copy/reader.cpp", (cores,), compile_time_args=(TensorAccessorCTA("x"),),
                       runtime_args={(0, 0): (BufferAddress("x"), 0, 2), (1, 0): (BufferAddress("x"), 2, 2)}),
            KernelSpec("compute", "copy/compute.cpp", (cores,), runtime_args={(0, 0): (2,), (1, 0): (2,)}),
            KernelSpec("writer", "copy/writer.cpp", (cores,), compile_time_args=(TensorAccessorCTA("y"),),
                       runtime_args={(0, 0): (BufferAddress("y"), 0, 2), (1, 0): (BufferAddress("y"), 2, 2)}),
        ],
        grid=(2, 1),
    )
    desc.l1_bytes_per_core()   # {(0, 0): 8192, (1, 0): 8192}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tilegraph.errors import KernelError
from tilegraph.tiles import FACE, TILE, TILE_BYTES, padded_shape  # noqa: F401 (FACE, TILE: part of this API)

DATA_FORMATS = ("float32", "bfloat16", "bfloat8_b")
# Wormhole / Blackhole L1 per Tensix core (1.5 MB). Firmware reserves some of it; CBs must stay well below.
L1_BYTES_PER_CORE = 1536 * 1024
# The one L1 budget: circular-buffer bytes per core a program may use (the rest is left to firmware, kernel
# binaries and stacks). validate() rejects more; builders that can trade L1 for speed (attention's fp32
# intermediates, double-buffered Q) choose the faster form only while it fits.
L1_CB_BUDGET = 1200 * 1024
KERNEL_ROLES = ("reader", "compute", "writer")
MATH_FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")
# The ArgConfig flag of an interleaved DRAM tensor (hostdevcommon/tensor_accessor/arg_config.hpp: IsDram = 1 << 1).
TENSOR_ACCESSOR_IS_DRAM = 1 << 1

Core = tuple[int, int]  # (x, y) logical core coordinate, as tt-metal's CoreCoord


@dataclass(frozen=True)
class CoreRange:
    """Inclusive rectangle of cores, like tt-metal's CoreRange(start, end)."""

    start: Core
    end: Core

    def __post_init__(self):
        if self.start[0] > self.end[0] or self.start[1] > self.end[1]:
            raise KernelError(f"CoreRange start {self.start} is past end {self.end}; give start <= end per axis")

    def cores(self) -> Iterator[Core]:
        for y in range(self.start[1], self.end[1] + 1):
            for x in range(self.start[0], self.end[0] + 1):
                yield (x, y)


def cores_of(ranges: Sequence[CoreRange]) -> list[Core]:
    """All cores of a core-range set, in row-major order, without duplicates."""
    seen: dict[Core, None] = {}
    for r in ranges:
        for c in r.cores():
            seen[c] = None
    return list(seen)


@dataclass(frozen=True)
class BufferAddress:
    """Runtime-arg placeholder: the DRAM address of the named tensor."""

    tensor: str


@dataclass(frozen=True)
class TensorAccessorCTA:
    """Compile-time-arg placeholder: the TensorAccessorArgs words of the named tensor (2 words when interleaved)."""

    tensor: str


Arg = int | BufferAddress | TensorAccessorCTA


@dataclass(frozen=True)
class TensorSpec:
    """A DRAM tensor in tile layout, interleaved by pages (one page = one 32x32 tile).

    `shape` is logical; the last two dims are padded up to multiples of 32 (padding is zero on the way in and dropped
    on the way out). Pages are numbered row-major over (leading dims..., tile row, tile col)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str = "input"  # "input" (read by kernels) or "output" (written by kernels)

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.name.isidentifier():
            raise KernelError(f"tensor name {self.name!r} must be an identifier (letters, digits, underscore)")
        if self.dtype not in DATA_FORMATS:
            raise KernelError(f"tensor {self.name!r}: dtype {self.dtype!r} unsupported; use one of {DATA_FORMATS}")
        if self.role not in ("input", "output"):
            raise KernelError(f"tensor {self.name!r}: role {self.role!r} must be 'input' or 'output'")
        if len(self.shape) < 2 or min(self.shape) < 1:
            raise KernelError(f"tensor {self.name!r}: shape {self.shape} needs >= 2 dims, each >= 1")

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return padded_shape(self.shape)

    @property
    def page_size(self) -> int:
        return TILE_BYTES[self.dtype]

    @property
    def num_pages(self) -> int:
        *lead, h, w = self.padded_shape
        return math.prod(lead) * (h // TILE) * (w // TILE)

    @property
    def nbytes(self) -> int:
        return self.num_pages * self.page_size


@dataclass(frozen=True)
class CBSpec:
    """A circular buffer on each core of `core_ranges`: `num_pages` pages of `page_size` bytes in `data_format`."""

    index: int
    data_format: str
    num_pages: int
    core_ranges: tuple[CoreRange, ...]
    page_size: int = 0  # 0 = one tile of data_format

    def __post_init__(self):
        object.__setattr__(self, "core_ranges", tuple(self.core_ranges))
        if not 0 <= self.index < 32:
            raise KernelError(f"CB index {self.index} out of range; tt-metal has CBs 0..31")
        if self.data_format not in DATA_FORMATS:
            raise KernelError(f"CB {self.index}: data format {self.data_format!r} unsupported; use {DATA_FORMATS}")
        if self.page_size == 0:
            object.__setattr__(self, "page_size", TILE_BYTES[self.data_format])
        if self.num_pages < 1 or self.page_size < 1:
            raise KernelError(f"CB {self.index}: needs num_pages >= 1 and page_size >= 1")

    @property
    def total_bytes(self) -> int:
        return self.num_pages * self.page_size


@dataclass(frozen=True)
class ComputeConfig:
    """Compute-kernel configuration (ttnn.ComputeConfigDescriptor)."""

    math_fidelity: str = "HiFi4"
    fp32_dest_acc_en: bool = False
    math_approx_mode: bool = False
    dst_full_sync_en: bool = False  # False: DST is double-buffered, half of it per tile_regs_acquire
    unpack_to_dest_fp32: tuple[int, ...] = ()  # CB indices unpacked straight to DST as fp32 (UnpackToDestFp32)

    def __post_init__(self):
        if self.math_fidelity not in MATH_FIDELITIES:
            raise KernelError(f"math_fidelity {self.math_fidelity!r} unknown; use one of {MATH_FIDELITIES}")

    @property
    def dst_tiles(self) -> int:
        """Tiles one tile_regs_acquire may use: 16 bf16 tiles of DST, halved for fp32 and for double buffering."""
        tiles = 16 // (2 if self.fp32_dest_acc_en else 1)
        return tiles if self.dst_full_sync_en else tiles // 2


@dataclass(frozen=True)
class KernelSpec:
    """One kernel (reader, compute or writer) on a set of cores."""

    role: str
    # path relative to kernels/, e.g. "rmsnorm/reader.cpp", or absolute (a test kernel, or one of tt-metal's own
    # kernels in the ttnn wheel: tilegraph.kernels.ttnn_kernel_path("ttnn/cpp/ttnn/operations/...cpp"))
    source: str
    core_ranges: tuple[CoreRange, ...]
    compile_time_args: tuple[Arg, ...] = ()
    defines: Mapping[str, str] = field(default_factory=dict)
    runtime_args: Mapping[Core, tuple[Arg, ...]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "core_ranges", tuple(self.core_ranges))
        object.__setattr__(self, "compile_time_args", tuple(self.compile_time_args))
        object.__setattr__(self, "defines", dict(self.defines))
        object.__setattr__(self, "runtime_args", {tuple(c): tuple(a) for c, a in self.runtime_args.items()})
        if self.role not in KERNEL_ROLES:
            raise KernelError(f"kernel {self.source}: role {self.role!r} must be one of {KERNEL_ROLES}")

    @property
    def cores(self) -> list[Core]:
        return cores_of(self.core_ranges)


@dataclass(frozen=True)
class ProgramDescription:
    """A whole tt-metal program: tensors, CBs, kernels, compute config and the core grid (x, y)."""

    name: str
    tensors: Sequence[TensorSpec]
    cbs: Sequence[CBSpec]
    kernels: Sequence[KernelSpec]
    compute_config: ComputeConfig = ComputeConfig()
    grid: Core = (8, 8)

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "cbs", tuple(self.cbs))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        self.validate()  # once, here: a description that exists is consistent, so no consumer re-checks it

    def tensor(self, name: str) -> TensorSpec:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KernelError(f"program {self.name!r}: no tensor named {name!r}; have {[t.name for t in self.tensors]}")

    @property
    def cores(self) -> list[Core]:
        """Every core that runs at least one kernel."""
        return cores_of([r for k in self.kernels for r in k.core_ranges])

    def l1_bytes_per_core(self) -> dict[Core, int]:
        """Bytes of L1 each core spends on circular buffers (the sum of its CBs' sizes)."""
        used: dict[Core, int] = {c: 0 for c in self.cores}
        for cb in self.cbs:
            for c in cores_of(cb.core_ranges):
                used[c] = used.get(c, 0) + cb.total_bytes
        return used

    def max_l1_bytes(self) -> int:
        return max(self.l1_bytes_per_core().values(), default=0)

    def validate(self) -> None:
        """Raise KernelError for an inconsistent description (names the field and the fix)."""
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise KernelError(f"program {self.name!r}: duplicate tensor names {names}")
        gx, gy = self.grid
        for k in self.kernels:
            for x, y in k.cores:
                if not (0 <= x < gx and 0 <= y < gy):
                    raise KernelError(f"program {self.name!r}: kernel {k.source} on core ({x},{y}) outside grid {self.grid}")
            for core in k.runtime_args:
                if core not in k.cores:
                    raise KernelError(f"program {self.name!r}: kernel {k.source} has runtime args for core {core} "
                                      f"which it does not run on")
            for args in [k.compile_time_args, *k.runtime_args.values()]:
                for a in args:
                    if isinstance(a, (BufferAddress, TensorAccessorCTA)):
                        self.tensor(a.tensor)
                    elif not isinstance(a, int) or not 0 <= a < 2**32:
                        raise KernelError(f"program {self.name!r}: kernel {k.source} arg {a!r} is not a uint32")
        for role in KERNEL_ROLES:
            seen: dict[Core, str] = {}
            for k in self.kernels:
                if k.role != role:
                    continue
                for c in k.cores:
                    if c in seen:
                        raise KernelError(f"program {self.name!r}: core {c} runs two {role} kernels "
                                          f"({seen[c]}, {k.source})")
                    seen[c] = k.source
        per_core: dict[tuple[Core, int], None] = {}
        for cb in self.cbs:
            for c in cores_of(cb.core_ranges):
                if (c, cb.index) in per_core:
                    raise KernelError(f"program {self.name!r}: CB {cb.index} defined twice on core {c}")
                per_core[(c, cb.index)] = None
        cc = self.compute_config
        formats = {cb.index: cb.data_format for cb in self.cbs}
        for i in cc.unpack_to_dest_fp32:
            if formats.get(i) != "float32":
                what = f"a {formats[i]} CB" if i in formats else "a CB this program does not define"
                raise KernelError(f"program {self.name!r}: compute_config.unpack_to_dest_fp32 names CB {i}, {what}; "
                                  f"only float32 CBs unpack straight to DST")
        if cc.unpack_to_dest_fp32 and not cc.fp32_dest_acc_en:
            raise KernelError(f"program {self.name!r}: compute_config.unpack_to_dest_fp32 needs fp32_dest_acc_en=True "
                              f"(DST holds 32-bit datums only in fp32 mode)")
        worst = self.max_l1_bytes()
        if worst > L1_CB_BUDGET:
            raise KernelError(f"program {self.name!r}: circular buffers need {worst} bytes of L1 on one core, "
                              f"more than {L1_CB_BUDGET}; use fewer/smaller CB pages")


def resolve_args(args: Sequence[Arg], desc: ProgramDescription, addresses: Mapping[str, int]) -> list[int]:
    """Replace placeholders with words: BufferAddress -> addresses[name]; TensorAccessorCTA -> [IsDram, page size]."""
    out: list[int] = []
    for a in args:
        if isinstance(a, BufferAddress):
            out.append(int(addresses[a.tensor]))
        elif isinstance(a, TensorAccessorCTA):
            out.extend([TENSOR_ACCESSOR_IS_DRAM, desc.tensor(a.tensor).page_size])
        else:
            out.append(int(a))
    return out
