"""Performance settings of a lowering: mode, data formats per tensor group, math fidelity per op class.

tt-metal's Llama model configs choose these per tensor group rather than globally (models/tt_transformers/PERF.md,
"performance" configuration: precision_cfg = {ff1_3: bfp4, ff2: bfp4, wqkv: bfp8, wo: bfp8, kv_cache: bfp8,
activation: mixed}, fidelity_cfg = {li_ff1_3: lofi, li_ff2: lofi, li_qkv_*: hifi2, li_o_*: hifi2,
sdpa_decode: hifi2, sdpa_prefill: hifi4}). The defaults below are that configuration for prefill and decode, and
bfloat16 weights with HiFi2 matmuls and float32 AdamW moments for training (what `tilegraph train` runs).

Precedence: mode defaults < the spec's `perf:` section < command-line flags. A `perf:` section looks like
    perf:
      weights: {mlp: bfloat4_b, attention: bfloat8_b, lm_head: bfloat8_b}
      kv_cache: bfloat8_b
      fidelity: {mlp: lofi, attention_proj: hifi2, attention: hifi4}
Every key is checked: an unknown group, format or fidelity is a SpecError naming it and the valid values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from tilegraph.errors import SpecError

MODES = ("train", "prefill", "decode")
# Bytes per element as stored on the device: bfp8_b / bfp4_b tiles hold 1024 mantissas plus 64 shared exponents
# (one per 16 elements), i.e. 1088 and 576 bytes per 32x32 tile.
FORMAT_BYTES = {"float32": 4.0, "bfloat16": 2.0, "bfloat8_b": 1088 / 1024, "bfloat4_b": 576 / 1024}
FIDELITIES = ("lofi", "hifi2", "hifi3", "hifi4")
WEIGHT_GROUPS = ("attention", "mlp", "lm_head", "embedding", "norm")
# op classes whose math fidelity is chosen separately
FIDELITY_CLASSES = ("mlp", "attention_proj", "attention", "lm_head")


def weight_group(param: str) -> str:
    """Tensor group of a parameter (or of its optimizer moment, `adam_m:<param>`)."""
    leaf = param.split(":", 1)[-1].rsplit(".", 1)[-1]
    if leaf in ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"):
        return "attention"
    if leaf in ("w1", "w2", "w3", "b1", "b2", "b3", "router", "expert_w1", "expert_w2", "expert_w3"):
        return "mlp"  # MoE experts and their router are the block's MLP
    if leaf in ("lm_head", "tok_embedding", "pos_embedding"):
        return "lm_head" if leaf == "lm_head" else "embedding"
    return "norm"


@dataclass(frozen=True)
class PerfConfig:
    mode: str = "train"
    weights: Mapping[str, str] = field(default_factory=dict)  # group -> format
    kv_cache: str = "bfloat16"
    activations: str = "bfloat16"
    optimizer: str = "float32"
    fidelity: Mapping[str, str] = field(default_factory=dict)  # op class -> fidelity

    def weight_format(self, param: str) -> str:
        return self.weights.get(weight_group(param), "bfloat16")

    def fidelity_of(self, op_class: str) -> str:
        return self.fidelity.get(op_class, "hifi2")

    def describe(self) -> str:
        w = ", ".join(f"{g} {f}" for g, f in self.weights.items())
        fid = ", ".join(f"{c} {f}" for c, f in self.fidelity.items())
        extra = f"KV cache {self.kv_cache}" if self.mode != "train" else f"optimizer state {self.optimizer}"
        return f"weights: {w}; activations {self.activations}; {extra}; fidelity: {fid}"


def default_config(mode: str) -> PerfConfig:
    if mode not in MODES:
        raise SpecError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "train":
        return PerfConfig(
            mode, {g: "bfloat16" for g in WEIGHT_GROUPS}, "bfloat16", "bfloat16", "float32",
            {c: "hifi2" for c in FIDELITY_CLASSES},
        )  # fmt: skip
    weights = {"attention": "bfloat8_b", "mlp": "bfloat4_b", "lm_head": "bfloat8_b", "embedding": "bfloat16",
               "norm": "bfloat16"}  # fmt: skip
    fidelity = {"mlp": "lofi", "attention_proj": "hifi2", "attention": "hifi4" if mode == "prefill" else "hifi2",
                "lm_head": "hifi2"}  # fmt: skip
    return PerfConfig(mode, weights, "bfloat8_b", "bfloat16", "float32", fidelity)


def _check(where: str, key: str, value, allowed) -> str:
    if value not in allowed:
        raise SpecError(f"{where}: {key} = {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def apply(config: PerfConfig, section: Mapping | None, where: str = "perf") -> PerfConfig:
    """Overrides from a mapping shaped like the spec's `perf:` section (or built from command-line flags)."""
    if not section:
        return config
    if not isinstance(section, Mapping):
        raise SpecError(f"{where}: must be a mapping (weights:, kv_cache:, activations:, optimizer:, fidelity:)")
    known = ("weights", "kv_cache", "activations", "optimizer", "fidelity")
    for key in section:
        if key not in known:
            raise SpecError(f"{where}: unknown key {key!r}; use one of {', '.join(known)}")
    weights, fidelity = dict(config.weights), dict(config.fidelity)
    for group, fmt in (section.get("weights") or {}).items():
        _check(f"{where}.weights", "group", group, WEIGHT_GROUPS)
        weights[group] = _check(f"{where}.weights.{group}", "format", fmt, ("bfloat16", "bfloat8_b", "bfloat4_b"))
    for cls, fid in (section.get("fidelity") or {}).items():
        _check(f"{where}.fidelity", "op class", cls, FIDELITY_CLASSES)
        fidelity[cls] = _check(f"{where}.fidelity.{cls}", "fidelity", fid, FIDELITIES)
    kv = _check(f"{where}.kv_cache", "format", section.get("kv_cache", config.kv_cache), ("bfloat16", "bfloat8_b"))
    act = _check(f"{where}.activations", "format", section.get("activations", config.activations), ("bfloat16",))
    opt = _check(f"{where}.optimizer", "format", section.get("optimizer", config.optimizer), ("float32", "bfloat16"))
    return replace(config, weights=weights, fidelity=fidelity, kv_cache=kv, activations=act, optimizer=opt)
