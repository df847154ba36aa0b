"""The model against published tt-metal measurements.

Every published number below is copied from the file named in its row, in
github.com/tenstorrent/tt-metal (tech_reports/GEMM_FLOPS/GEMM_FLOPS.md, "Manually Tuned Performance" tables:
N150 and P150, DRAM-interleaved in0 / in1 / out, use_trace True, column "inference_time_avg [ns]"). The modelled
time is ttnn's 2-D multicast matmul (tilegraph.perf.baselines.matmul_2d) through tilegraph.perf.model.

The FlashAttention report (tech_reports/FlashAttention/FlashAttention.md) gives its SDPA times only as a figure
(images/image3.png), and no rms_norm device time was found in text form, so neither is in the table: no number
here is read off a plot.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.perf import baselines
from tilegraph.perf.devices import get_device
from tilegraph.perf.model import estimate

GEMM_REPORT = "tenstorrent/tt-metal tech_reports/GEMM_FLOPS/GEMM_FLOPS.md"
# The band the model is held to (tests/test_perf_model.py): published / modelled within [1/1.5, 1.5].
RATIO_BAND = (1 / 1.5, 1.5)


@dataclass(frozen=True)
class Published:
    device: str
    m: int
    k: int
    n: int
    dtype: str
    fidelity: str
    time_ns: float
    source: str = GEMM_REPORT

    @property
    def config(self) -> str:
        return f"matmul {self.m}x{self.k}x{self.n} {self.dtype} {self.fidelity}"


PUBLISHED = (
    Published("n150", 4096, 4096, 4096, "bfloat16", "HiFi2", 2007951.74),
    Published("n150", 4096, 4096, 4096, "bfloat16", "HiFi4", 2711439.13),
    Published("n150", 8192, 8192, 8192, "bfloat16", "HiFi4", 20846247.67),
    Published("n150", 4096, 4096, 4096, "bfloat8_b", "HiFi2", 1451368.33),
    Published("n150", 4096, 4096, 4096, "bfloat8_b", "LoFi", 977981.09),
    Published("p150", 4160, 4160, 4160, "bfloat16", "HiFi2", 540421.01),
    Published("p150", 4160, 4160, 4160, "bfloat16", "HiFi4", 909597.87),
    Published("p150", 5120, 6656, 6656, "bfloat16", "HiFi4", 2818577.29),
    Published("p150", 4160, 4160, 4160, "bfloat8_b", "HiFi2", 478374.96),
    Published("p150", 10240, 13312, 13312, "bfloat8_b", "HiFi2", 11736917.50),
)


def modelled(row: Published):
    dev = get_device(row.device)
    threads = baselines.matmul_2d(row.m, row.k, row.n, dev, row.dtype, row.fidelity)
    return estimate(threads, dev, baselines.double_buffered_cb_pages(threads), row.fidelity)


def table() -> list[dict]:
    out = []
    for row in PUBLISHED:
        est = modelled(row)
        out.append({"device": row.device, "config": row.config, "published_us": row.time_ns / 1e3,
                    "modelled_us": est.time_us, "ratio": row.time_ns / 1e3 / est.time_us, "bound": est.bound,
                    "source": row.source})
    return out


def markdown() -> str:
    lines = ["| device | config | published (us) | modelled (us) | published / modelled | modelled bound |",
             "|---|---|---:|---:|---:|---|"]
    for r in table():
        lines.append(f"| {r['device']} | {r['config']} | {r['published_us']:.1f} | {r['modelled_us']:.1f} | "
                     f"{r['ratio']:.2f} | {r['bound']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
