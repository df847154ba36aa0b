"""Text generation from a trained run: temperature + top-k sampling, one byte at a time.

The model is causal, so the logits at position n-1 depend only on tokens 0..n-1: we run a compiled forward
Program on a window padded on the right and read position n-1. Programs are compiled for a few window lengths
(powers of two up to the context), so short prompts do not pay for a full-length forward pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tilegraph.train.checkpoint import RunCheckpoints, load_checkpoint
from tilegraph.train.data import decode, encode

from tilegraph.errors import DataError


def load_model(run_dir: str | Path):
    """(spec, params, context, checkpoint path) from a run directory: best.safetensors, else the latest step checkpoint."""
    from tilegraph.graph import param_shapes
    from tilegraph.graph.spec import load_spec

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"run directory {run_dir} does not exist; pass the --out directory of a `tilegraph train` run"
        )
    store = RunCheckpoints(run_dir)
    path = store.best_path if store.best_path.is_file() else store.latest()
    if path is None:
        raise DataError(
            f"run directory {run_dir} holds no checkpoint; train first (tilegraph train SPEC --out {run_dir})"
        )
    ckpt = load_checkpoint(path)
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
        from tilegraph.runtime import compile as compile_graph

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
    """The tokenizer the run in `run_dir` was trained with (bytes, or its saved BPE)."""
    from tilegraph.train.tokenizer import for_run

    store = RunCheckpoints(Path(run_dir))
    path = store.best_path if store.best_path.is_file() else store.latest()
    name = load_checkpoint(path).meta["config"].get("tokenizer", "bytes") if path else "bytes"
    return for_run(name, Path(run_dir))


def generate(
    generator: Generator, prompt: str, num_tokens: int, temperature: float, top_k: int | None, seed: int,
    tokenizer=None,
) -> str:
    """The prompt followed by `num_tokens` sampled bytes, decoded as UTF-8."""
    if temperature < 0:
        raise DataError(f"--temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise DataError(f"--top-k must be at least 1, got {top_k}")
    enc, dec = (encode, decode) if tokenizer is None else (tokenizer.encode, tokenizer.decode)
    tokens = list(enc(prompt)) or list(enc("\n"))[:1]  # an empty prompt starts from a newline
    rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(num_tokens):
        tokens.append(sample_next(generator.next_logits(np.array(tokens, np.int32)), temperature, top_k, rng))
    return dec(tokens) if prompt else dec(tokens[1:])
