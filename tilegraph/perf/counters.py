"""What the emulator counted per core and per RISC-V thread (kernels/emu/src/perf_counters.h), as Python data.

Keys (per thread): `unpack.<fmt>` / `pack.<fmt>` tiles; `fpu.matmul.<fidelity>` 32x32x32 tile products,
`fpu.binary.<op>[.<fidelity>]`, `fpu.bcast.<op>[.<fidelity>]`, `fpu.reduce.max`, `fpu.reduce.sum.<fidelity>`,
`fpu.copy`, `fpu.transpose` tiles; `sfpu.<op>.faces` 16x16 faces; `noc.{read,write}.{dram,l1}.{bytes,n}`,
`noc.{read,write}_barrier`; `noc.write.mcast.{bytes,n,dests}` multicasts (once, at the sender, with the
number of destinations); `noc.atomic.n` semaphore increments; `sem.wait`, `sem.wait.blocked`; `dram.page_class.<k>.bytes` (page index mod 24, see PERF_DRAM_PAGE_CLASSES);
`cb.<i>.{pushed,popped}` pages, `cb.<i>.{reserve_max,wait_max}` largest block, `cb.<i>.<api>.blocked` how often the
call had to wait (host-scheduling dependent: reported, not used for time); `init.{fpu,sfpu,reconfig}`, `dst.acquire`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DRAM_PAGE_CLASSES = 24  # kernels/emu/src/perf_counters.h PERF_DRAM_PAGE_CLASSES


@dataclass
class ThreadCounters:
    core: tuple[int, int]
    role: str  # "reader", "compute" or "writer"
    kernel: str
    counts: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> int:
        return self.counts.get(key, 0)

    def matching(self, prefix: str) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if k.startswith(prefix)}


def parse_counters(text: str) -> list[ThreadCounters]:
    """The runner's counter file: "thread X Y ROLE KERNEL" headers, each followed by "KEY VALUE" lines."""
    threads: list[ThreadCounters] = []
    for line in text.splitlines():
        if line.startswith("thread "):
            _, x, y, role, kernel = line.split(" ", 4)
            threads.append(ThreadCounters((int(x), int(y)), role, kernel))
        elif line.strip():
            key, value = line.rsplit(" ", 1)
            threads[-1].counts[key] = int(value)
    return threads


NOT_SUMMED = ("reserve_max", "wait_max")  # counters that are maxima, not totals: never scaled


def scale_counters(threads: list[ThreadCounters], factor: float) -> list[ThreadCounters]:
    """Every summed counter times `factor`, except the CB page counts: the model reads those only to tell whether
    more than one block went through a CB (model.single_buffered_cbs), which the emulated slice shows as it is, while
    a scaled count would make a CB pushed once per run (a reduce scaler) look like a stream."""
    out = []
    for t in threads:
        counts = {k: (v if k.endswith(NOT_SUMMED) or k.startswith("cb.") else round(v * factor))
                  for k, v in t.counts.items()}
        out.append(ThreadCounters(t.core, t.role, t.kernel, counts))
    return out
