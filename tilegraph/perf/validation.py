"""The model against published tt-metal measurements.

Every published number below is copied from the file named in its row, in
github.com/tenstorrent/tt-metal (tech_reports/GEMM_FLOPS/GEMM_FLOPS.md, "Manually Tuned Performance" tables:
N150 and P150, DRAM-interleaved in0 / in1 / out, use_trace True, column "inference_time_avg [ns]"). The modelled
time is ttnn's 2-D multicast matmul (tilegraph.perf.baselines.matmul_2d) through tilegraph.perf.model.

SDPA: ttnn.transformer.scaled_dot_product_attention on a Blackhole p100a, device kernel duration, from
tenstorrent/tt-metal issue #55756 (the table of its 2026-09-19 comment: main 54a826b1d93, S 4096, 32 Q / 8 KV
heads, head_dim 128, bfloat8_b Q / K / V, HiFi2, column "wall"). Modelled: tilegraph.perf.baselines.sdpa. The
SFPU cost the model uses for exp was taken from a different measurement (issue #55759, HiFi4, 64 cores), not fitted
to these rows. The FlashAttention report gives its SDPA times only as a figure, and no rms_norm device time was
found in text form: no number here is read off a plot.
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

    def threads(self, dev):
        return baselines.matmul_2d(self.m, self.k, self.n, dev, self.dtype, self.fidelity)


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


SDPA_ISSUE = "tenstorrent/tt-metal issue #55756"


@dataclass(frozen=True)
class PublishedSdpa:
    device: str
    seq: int
    heads: int
    kv_heads: int
    head_dim: int
    causal: bool
    q_chunk: int
    k_chunk: int
    dtype: str
    fidelity: str
    time_ns: float
    source: str = SDPA_ISSUE

    @property
    def config(self) -> str:
        mask = "causal" if self.causal else "non-causal"
        return (f"sdpa S{self.seq} {self.heads}q/{self.kv_heads}kv d{self.head_dim} {mask} q{self.q_chunk} "
                f"k{self.k_chunk} {self.dtype} {self.fidelity}")

    def threads(self, dev):
        return baselines.sdpa(1, self.heads, self.kv_heads, self.seq, self.head_dim, dev, self.dtype, self.fidelity,
                              self.causal, self.q_chunk, self.k_chunk)


PUBLISHED_SDPA = tuple(
    PublishedSdpa("p100a", 4096, 32, 8, 128, causal, q, k, "bfloat8_b", "HiFi2", us * 1e3)
    for causal, q, k, us in [(True, 64, 64, 3616), (True, 128, 128, 1835), (True, 256, 256, 1284),
                             (True, 512, 512, 1357), (False, 128, 128, 2104)])


def modelled(row: Published | PublishedSdpa):
    dev = get_device(row.device)
    threads = row.threads(dev)
    return estimate(threads, dev, baselines.double_buffered_cb_pages(threads), row.fidelity)


def table() -> list[dict]:
    out = []
    for row in PUBLISHED + PUBLISHED_SDPA:
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
