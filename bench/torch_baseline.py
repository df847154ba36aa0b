"""PyTorch eager CPU reference of the nano-trickster training step (for comparison only).

This is an independent re-implementation of nano-trickster (specs/nano-trickster.yaml) in plain
PyTorch, written only to measure what PyTorch eager achieves for the same model and batch on the
same machine, so that tilegraph's numpy runtime can be compared against it in the same run. It
shares no code with tilegraph and does not import it (it runs under its own Python 3.11 virtualenv,
`.venv-torch`); its numbers are a baseline, not a correctness oracle for tilegraph.

Model (float32): vocab 256, hidden 256, 6 pre-norm llama blocks, 8 heads (8 kv heads), head_dim 32,
SwiGLU mlp_hidden 768, RMSNorm (eps 1e-5, learned gain, no bias anywhere), RoPE rotate-half
(base 10000) on q and k, causal attention with scale 1/sqrt(32), final RMSNorm, tied embeddings,
mean cross-entropy over all positions: 5,180,672 parameters.

One timed step = zero_grad, forward, loss.backward(), clip_grad_norm_(1.0) and
AdamW(lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on 2-D weights, 0 on norm gains).
Inputs are random byte tokens (fixed seed); targets are the same sequence shifted by one.

Run (creates .venv-torch with torch 2.13.0 CPU if missing):

    make bench-torch
    make bench-torch TORCH_ARGS="--attention manual"

or directly: .venv-torch/bin/python bench/torch_baseline.py [--attention sdpa|manual] [--steps 10]
[--warmup 2] [--batch 16] [--seq 256] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 256
HIDDEN = 256
LAYERS = 6
HEADS = 8
KV_HEADS = 8
HEAD_DIM = 32
MLP_HIDDEN = 768
NORM_EPS = 1e-5
ROPE_BASE = 10000.0
EXPECTED_PARAMS = 5_180_672


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq: int, dim: int, base: float = ROPE_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (seq, dim): pair (j, j + dim/2) is rotated by pos * base^(-2j/dim)."""
    inv_freq = base ** (-torch.arange(0, dim // 2, dtype=torch.float64) * 2.0 / dim)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, manual: bool):
        super().__init__()
        self.manual = manual
        self.wq = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.wk = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.wv = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.wo = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.wk(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.wv(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # KV_HEADS == HEADS here, so no kv repetition is needed.
        if self.manual:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HEAD_DIM))
            scores = scores.masked_fill(mask, float("-inf"))
            out = torch.softmax(scores, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(HEAD_DIM))
        return self.wo(out.transpose(1, 2).reshape(b, t, HEADS * HEAD_DIM))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(HIDDEN, MLP_HIDDEN, bias=False)
        self.w3 = nn.Linear(HIDDEN, MLP_HIDDEN, bias=False)
        self.w2 = nn.Linear(MLP_HIDDEN, HIDDEN, bias=False)

    def forward(self, h):
        return self.w2(F.silu(self.w1(h)) * self.w3(h))


class Block(nn.Module):
    def __init__(self, manual: bool):
        super().__init__()
        self.attn_norm = RMSNorm(HIDDEN)
        self.attn = Attention(manual)
        self.mlp_norm = RMSNorm(HIDDEN)
        self.mlp = MLP()

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))


class NanoTrickster(nn.Module):
    def __init__(self, seq: int, manual: bool):
        super().__init__()
        self.tok_embedding = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList(Block(manual) for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        cos, sin = rope_tables(seq, HEAD_DIM)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.ones(seq, seq, dtype=torch.bool).triu(1)  # True above the diagonal = masked
        self.register_buffer("mask", mask, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        cos, sin, mask = self.cos[:t], self.sin[:t], self.mask[:t, :t]
        x = self.tok_embedding(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = self.norm(x) @ self.tok_embedding.weight.t()  # tied embeddings
        return F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa",
                    help="sdpa: F.scaled_dot_product_attention(is_causal=True); manual: explicit softmax")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="torch.set_num_threads (default: CPUs in os.sched_getaffinity(0))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON line with the result")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = NanoTrickster(args.seq, manual=args.attention == "manual")
    n_params = sum(p.numel() for p in model.parameters())

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.95), eps=1e-8,
    )

    rng = np.random.default_rng(args.seed)
    data = torch.from_numpy(rng.integers(0, VOCAB, size=(args.batch, args.seq + 1), dtype=np.int64))
    tokens, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    losses, times = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)

    med = statistics.median(times) if times else float("nan")
    tok_s = args.batch * args.seq / med
    result = {
        "tokens_per_s": round(tok_s, 1),
        "ms_per_step": round(med * 1e3, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, attention {args.attention}, "
          f"batch {args.batch} x seq {args.seq}")
    ok = "ok" if n_params == EXPECTED_PARAMS else f"MISMATCH, expected {EXPECTED_PARAMS:,}"
    print(f"parameters: {n_params:,} ({ok})")
    print(f"loss step 1: {losses[0]:.4f} (ln {VOCAB} = {math.log(VOCAB):.4f}); "
          f"last step {len(losses)}: {losses[-1]:.4f}")
    print(f"{args.steps} timed steps after {args.warmup} warm-up: median {med * 1e3:.1f} ms/step, "
          f"min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}")
    print(f"tokens/s: {tok_s:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
