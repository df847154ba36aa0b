"""Model specs: a YAML file (or dict) becomes a validated, frozen `ModelSpec`.

Every rejection is a SpecError that names the file, the field and the fix, because a spec is hand-written input
and the CLI shows the message as its only line of output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tilegraph.errors import SpecError


@dataclass(frozen=True)
class ModelSpec:
    """A pre-norm decoder. The defaults are llama-style (RMSNorm, RoPE, grouped-query causal attention, SwiGLU, no
    biases); `norm`, `mlp`, `positions`, `bias` and `dropout` describe GPT-2-style and other variants."""

    name: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    mlp_hidden: int
    max_seq_len: int
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    mlp: str = "swiglu"
    norm: str = "rmsnorm"
    bias: bool = False
    # Sliding-window causal attention: query i sees keys i-W+1 .. i (W keys, itself included); None = full causal.
    attention_window: int | None = None
    # Mixture of experts in place of the dense MLP (every layer): router + top-k of `experts` SwiGLU MLPs.
    moe: MoESpec | None = None
    # issue 14 (arch-a): absolute or relative position scheme, and the dropout probability (training only).
    positions: str = "rope"
    dropout: float = 0.0
    # The `perf:` section (formats per tensor group, KV cache, fidelity per op class; graph/perf.py checks it),
    # kept as nested (key, value) pairs so the spec stays immutable.
    perf: tuple = ()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def perf_section(self) -> dict:
        return {k: dict(v) if isinstance(v, tuple) else v for k, v in self.perf}

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.perf:
            out["perf"] = self.perf_section()
        else:
            out.pop("perf")
        if self.moe is not None:
            out["moe"] = asdict(self.moe)
        # Optional fields left unset are written as absent, so load_spec(spec.to_dict()) round-trips.
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class MoESpec:
    """`moe: {experts, top_k, aux_loss_coef}`: each token goes to its top_k experts (SwiGLU MLPs of mlp_hidden),
    weighted by the router softmax renormalised over those k; the Switch-Transformer load-balancing loss
    aux_loss_coef * experts * sum_e(fraction routed to e * mean router probability of e), summed over layers, is
    added to the training loss."""

    experts: int
    top_k: int = 2
    aux_loss_coef: float = 0.01


# field -> (kind, required, default). `kind` drives the type check and its message.
_FIELDS: dict[str, tuple[str, bool, object]] = {
    "name": ("str", True, None),
    "vocab_size": ("positive int", True, None),
    "hidden_size": ("positive int", True, None),
    "num_layers": ("positive int", True, None),
    "num_heads": ("positive int", True, None),
    "num_kv_heads": ("positive int", False, None),  # defaults to num_heads
    "mlp_hidden": ("positive int", True, None),
    "max_seq_len": ("positive int", True, None),
    "norm_eps": ("positive float", False, 1e-5),
    "rope_base": ("positive float", False, 10000.0),
    "tie_embeddings": ("bool", False, True),
    "mlp": ("str", False, "swiglu"),
    "norm": ("str", False, "rmsnorm"),
    "bias": ("bool", False, False),
    "attention_window": ("window", False, None),
    "moe": ("moe", False, None),
    "positions": ("str", False, "rope"),
    "dropout": ("probability", False, 0.0),
    "perf": ("mapping", False, None),
}

# Architecture switches that exist so a spec says what it means; only these values are implemented.
_SUPPORTED = {
    # mlp_hidden is the inner width of every MLP kind: gated (swiglu, geglu: three [H,F]-sized weights) or not
    # (gelu, relu: two), so a gated and a non-gated MLP of equal parameters have mlp_hidden in ratio 2:3.
    "mlp": ("swiglu", "geglu", "gelu", "relu"),
    "norm": ("rmsnorm", "layernorm"),
    "bias": (False, True),  # a bias on every linear except the output projection, and LayerNorm's beta
    "positions": ("rope", "learned", "sinusoidal", "alibi", "none"),
}


def _check_type(where: str, key: str, kind: str, value: object) -> object:
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise SpecError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where}: field {key!r} must be true or false, got {value!r}")
        return value
    if kind == "positive int":
        # bool is a subclass of int in Python; `true` is never a size.
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: field {key!r} must be a positive integer, got {value!r}")
        if value <= 0:
            raise SpecError(f"{where}: field {key!r} must be a positive integer, got {value}; set it to a value >= 1")
        return value
    if kind == "window":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError(
                f"{where}: field 'attention_window' must be a positive number of keys (e.g. 4096), got {value!r}; "
                f"set it >= 1, or remove the field for full causal attention"
            )
        return value
    if kind == "moe":
        return _check_moe(where, value)
    if kind == "mapping":
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: field {key!r} must be a mapping (weights:, kv_cache:, fidelity:), got {value!r}")
        from tilegraph.graph.perf import apply, default_config

        apply(default_config("decode"), value, f"{where}: perf")  # every key and value checked here
        return tuple((k, tuple(v.items()) if isinstance(v, Mapping) else v) for k, v in value.items())
    if kind == "positive float":
        # YAML reads `1e-5` (no dot) as a string; accept it when it parses as a number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise SpecError(f"{where}: field {key!r} must be a positive number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: field {key!r} must be a positive number, got {value!r}")
        if not 0 < value < float("inf"):  # also rejects NaN
            raise SpecError(f"{where}: field {key!r} must be a positive finite number, got {value}")
        return float(value)
    if kind == "probability":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise SpecError(f"{where}: field {key!r} must be a number in [0, 1), got {value!r}; e.g. {key}: 0.1")
        return float(value)
    raise AssertionError(kind)  # pragma: no cover


def _unique_key_loader(where: str):
    """A safe YAML loader that rejects a key given twice in one mapping (plain YAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise SpecError(
                    f"{where}: field {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def read_spec_file(source: str | os.PathLike) -> tuple[str, object]:
    """(path, parsed YAML) of a spec file; SpecError for a missing, unreadable, non-UTF-8 or non-YAML file, or
    one that gives a key twice."""
    import yaml

    path = Path(source)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} not found; pass a path like specs/nano-trickster.yaml")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a text file (byte {e.start} is not UTF-8); pass a YAML spec") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return str(path), yaml.load(text, Loader=_unique_key_loader(str(path)))  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}: not valid YAML{at}; fix the syntax ({getattr(e, 'problem', e)})") from None


def load_spec(source: str | os.PathLike | Mapping | ModelSpec) -> ModelSpec:
    """Load and validate a spec from a YAML path or a mapping; raises SpecError naming the field and the fix."""
    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, Mapping):
        where, raw = "spec", source
    else:
        where, raw = read_spec_file(source)
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: a spec must be a mapping of fields (name: ..., hidden_size: ...), got {type(raw).__name__}")

    unknown = [k for k in raw if k not in _FIELDS]
    if unknown:
        raise SpecError(
            f"{where}: unknown field {str(unknown[0])!r}; remove it or use one of: {', '.join(_FIELDS)}"
        )
    missing = [k for k, (_, required, _) in _FIELDS.items() if required and k not in raw]
    if missing:
        raise SpecError(f"{where}: missing required field {missing[0]!r}; add `{missing[0]}: <value>`")

    values: dict[str, object] = {}
    for key, (kind, _, default) in _FIELDS.items():
        if key in raw:
            values[key] = _check_type(where, key, kind, raw[key])
        elif default is not None or kind in ("bool", "probability"):
            values[key] = default
    values.setdefault("num_kv_heads", values["num_heads"])

    for key, allowed in _SUPPORTED.items():
        if values[key] not in allowed:
            shown = ", ".join(str(a).lower() if isinstance(a, bool) else a for a in allowed)
            raise SpecError(f"{where}: field {key!r} = {values[key]!r} is not supported; use {shown}")

    hidden, heads, kv = values["hidden_size"], values["num_heads"], values["num_kv_heads"]
    if hidden % heads:
        raise SpecError(
            f"{where}: field 'hidden_size' {hidden} is not divisible by num_heads {heads}; "
            f"choose num_heads that divides hidden_size (e.g. {_divisor_near(hidden, heads)})"
        )
    if heads % kv:
        raise SpecError(
            f"{where}: field 'num_kv_heads' {kv} does not divide num_heads {heads}; "
            f"choose num_kv_heads from {_divisors(heads)}"
        )
    if values["positions"] == "rope" and (hidden // heads) % 2:
        raise SpecError(
            f"{where}: head_dim = hidden_size/num_heads = {hidden // heads} is odd; RoPE rotates pairs of "
            f"dimensions, so change hidden_size or num_heads to make it even (or choose another `positions`)"
        )
    if values["positions"] == "sinusoidal" and hidden % 2:
        raise SpecError(
            f"{where}: field 'hidden_size' {hidden} is odd; sinusoidal positions pair sin and cos dimensions, "
            f"so make hidden_size even (or choose another `positions`)"
        )
    return ModelSpec(**values)


def _check_moe(where: str, value: object) -> MoESpec:
    """`moe: {experts: E, top_k: K, aux_loss_coef: C}` -> MoESpec; names the sub-field and the fix."""
    example = "moe: {experts: 8, top_k: 2}"
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: field 'moe' must be a mapping like `{example}`, got {value!r}")
    allowed = ("experts", "top_k", "aux_loss_coef")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise SpecError(f"{where}: field 'moe' has unknown key {str(unknown[0])!r}; use {', '.join(allowed)}")
    if "experts" not in value:
        raise SpecError(f"{where}: field 'moe' needs 'experts'; write `{example}`")
    experts = _check_type(where, "moe.experts", "positive int", value["experts"])
    top_k = _check_type(where, "moe.top_k", "positive int", value.get("top_k", 2))
    coef = value.get("aux_loss_coef", 0.01)
    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not 0 <= coef < float("inf"):
        raise SpecError(f"{where}: field 'moe.aux_loss_coef' must be a number >= 0 (0 turns the loss off), got {coef!r}")
    if top_k > experts:
        raise SpecError(
            f"{where}: field 'moe.top_k' {top_k} is larger than moe.experts {experts}; "
            f"set top_k <= {experts} (Mixtral uses top_k 2 of 8)"
        )
    return MoESpec(experts=experts, top_k=top_k, aux_loss_coef=float(coef))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _divisor_near(n: int, target: int) -> int:
    return min(_divisors(n), key=lambda d: (abs(d - target), d))
