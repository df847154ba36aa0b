"""Text generation from a trained run: temperature + top-k sampling, one byte at a time.

The model is causal, so the logits at position n-1 depend only on tokens 0..n-1: we run a compiled forward
Program on a window padded on the right and read position n-1. Programs are compiled for a few window lengths
(powers of two up to the context), so short prompts do not pay for a full-length forward pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tilegraph.train.checkpoint import check_belongs_to_run, choose_checkpoint

from tilegraph.errors import DataError
from tilegraph.files import remove_stale_temporaries


def load_model(run_dir: str | Path, checkpoint: str | Path | None = None):
    """(spec, params, context, checkpoint path) from a run directory: `checkpoint` when given, else
    best.safetensors, else the newest step checkpoint (a default that does not load stops naming the others)."""
    from tilegraph.graph import param_shapes
    from tilegraph.graph.spec import load_spec

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"run directory {run_dir} does not exist; pass the --out directory of a `tilegraph train` run"
        )
    remove_stale_temporaries(run_dir)  # left by a run killed mid-save; never valid files
    if checkpoint is None and not any(run_dir.glob("*.safetensors")):
        raise DataError(
            f"run directory {run_dir} holds no checkpoint; train first (tilegraph train SPEC --out {run_dir})"
        )
    ckpt = choose_checkpoint(run_dir, checkpoint, prefer_best=True,
                             flag_hint=f"tilegraph sample {run_dir} --checkpoint")  # fmt: skip
    path = ckpt.path
    if checkpoint is None:  # the run's own default file must be the run's (an explicit --checkpoint is the user's call)
        from tilegraph.train.loop import run_identity

        run_id, spec_dict = run_identity(run_dir)
        if spec_dict is not None:
            check_belongs_to_run(ckpt, run_id, spec_dict, run_dir)
    spec = load_spec(ckpt.meta["spec"])
    params = {}
    for name, shape in param_shapes(spec).items():
        t = ckpt.tensors.get(name)
        if t is None or t.shape != tuple(shape):
            got = "missing" if t is None else f"shape {list(t.shape)}"
            raise DataError(f"checkpoint {path}: parameter {name!r} is {got}, the spec needs {list(shape)}")
        params[name] = np.ascontiguousarray(t, dtype=np.float32)
    # Generate within the window length the model was trained on (RoPE positions beyond it were never seen).
    context = min(spec.max_seq_len, int(ckpt.meta["config"]["seq"]))
    return spec, params, context, path


class Generator:
    """Compiled forward Programs (batch 1) for window lengths 16, 32, ... up to `context`."""

    def __init__(self, spec, params: dict[str, np.ndarray], context: int):
        self.spec, self.params, self.context = spec, params, context
        self._programs: dict[int, object] = {}

    def _program(self, length: int):
        from tilegraph.graph import build

        from tilegraph.compiler import compile as compile_graph

        window = 16
        while window < length:
            window *= 2
        window = min(window, self.context)
        if window not in self._programs:
            self._programs[window] = compile_graph(build(self.spec, 1, window))
        return window, self._programs[window]

    def next_logits(self, tokens: np.ndarray) -> np.ndarray:
        """Logits [vocab] for the token following `tokens` (the last `context` of them are used)."""
        tokens = tokens[-self.context :]
        n = len(tokens)
        window, program = self._program(n)
        feed = np.zeros((1, window), np.int32)
        feed[0, :n] = tokens
        out = program.run(self.params, {"tokens": feed, "targets": np.zeros_like(feed)}, backend="numpy")
        return np.asarray(out["logits"][0, n - 1], dtype=np.float64)


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One token from softmax(logits / temperature) restricted to the top_k largest; temperature 0 is argmax."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < len(z):
        cutoff = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cutoff, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def run_tokenizer(run_dir: str | Path):
    """The tokenizer the run in `run_dir` was trained with (its config.json's recipe): bytes, or its saved BPE."""
    import json

    from tilegraph.train.tokenizer import for_run

    path = Path(run_dir) / "config.json"
    config = json.loads(path.read_text()).get("config", {}) if path.is_file() else {}
    return for_run(config.get("tokenizer", "bytes"), Path(run_dir))


def prompt_bytes(prompt: str) -> list[int]:
    """The prompt's bytes. Command-line text that is not UTF-8 reaches Python with its bytes kept as surrogates
    (surrogateescape); a byte-level model takes exactly those bytes."""
    return list(prompt.encode("utf-8", errors="surrogateescape"))


def stream(generator: Generator, prompt: str, num_tokens: int, temperature: float, top_k: int | None, seed: int,
           tokenizer=None):
    """Yield the prompt, then the text of each sampled byte as soon as it completes a UTF-8 character
    (invalid sequences become U+FFFD). With a BPE `tokenizer` (train/tokenizer.py), tokens are its ids and each
    yield is the text the newest token added."""
    import codecs

    if not (temperature >= 0 and math.isfinite(temperature)):
        raise DataError(f"--temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise DataError(f"--top-k must be at least 1, got {top_k}")
    if seed < 0:
        raise DataError(f"--seed must be >= 0, got {seed}")
    if tokenizer is not None and tokenizer.name != "bytes":
        yield from _stream_tokens(generator, prompt, num_tokens, temperature, top_k, seed, tokenizer)
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tokens = prompt_bytes(prompt) or [int(b"\n"[0])]  # an empty prompt starts from a newline
    if prompt:
        yield decoder.decode(bytes(tokens))
    rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(num_tokens):
        tokens.append(sample_next(generator.next_logits(np.array(tokens, np.int32)), temperature, top_k, rng))
        text = decoder.decode(bytes([tokens[-1]]))
        if text:
            yield text
    yield decoder.decode(b"", final=True)


def _stream_tokens(generator, prompt, num_tokens, temperature, top_k, seed, tokenizer):
    tokens = list(tokenizer.encode(prompt)) or list(tokenizer.encode("\n"))[:1]
    shown = tokenizer.decode(tokens) if prompt else ""
    start = 0 if prompt else len(tokens)
    if prompt:
        yield shown
    rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(num_tokens):
        tokens.append(sample_next(generator.next_logits(np.array(tokens, np.int32)), temperature, top_k, rng))
        text = tokenizer.decode(tokens[start:]) if not prompt else tokenizer.decode(tokens)
        yield text[len(shown):]
        shown = text


def generate(
    generator: Generator, prompt: str, num_tokens: int, temperature: float, top_k: int | None, seed: int,
    tokenizer=None,
) -> str:
    """The prompt followed by `num_tokens` sampled bytes, decoded as UTF-8."""
    return "".join(stream(generator, prompt, num_tokens, temperature, top_k, seed, tokenizer))
