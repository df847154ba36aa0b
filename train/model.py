"""The compiled programs a training run needs, built once: one training step and one forward pass.

The training-step Program (forward, backward, gradient clipping, AdamW) updates parameters and optimizer state
in place; the forward Program (same batch and sequence length) gives the validation loss. Both are compiled
once per run and executed once per step: no per-step graph building.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def training_target(device: str):
    """The compile Target of `tilegraph train --device`: cpu -> the numpy backend; emu -> the emu backend (kernel
    ops in the kernel emulator, in bf16, on its default 2x2 grid; the rest on numpy); a card name -> the ttnn
    backend on that mesh (runtime/ttnn_backend.py, which needs the card before anything runs)."""
    from tilegraph.compiler import Target

    if device == "cpu":
        return Target()
    if device == "emu":
        return Target(backend="emu")
    return Target(backend="ttnn", mesh=device)


@dataclass
class StepResult:
    loss: float
    grad_norm: float


class TrainingPrograms:
    """Training-step and forward Programs for one (spec, batch, seq), compiled for `target` (default: the numpy
    backend). The optimizer is the recipe's AdamW (graph.autodiff.AdamWConfig: betas (0.9, 0.95), weight decay
    0.1 on 2-D weights, global-norm clipping at 1.0) unless `optimizer` says otherwise."""

    def __init__(self, spec, batch: int, seq: int, optimizer=None, target=None, dropout_seed: int = 0):
        from tilegraph.graph import AdamWConfig, build, training_step

        from tilegraph.compiler import compile as compile_graph

        self.spec, self.batch, self.seq = spec, batch, seq
        # Dropout masks (if the spec has dropout) are drawn from (dropout_seed, step): the checkpointed step
        # counter is all a resumed run needs to draw the same ones.
        step_graph = training_step(spec, batch, seq, optimizer or AdamWConfig(), dropout_seed=dropout_seed)
        self.train_program = compile_graph(step_graph, target)
        self.forward_program = compile_graph(build(spec, batch, seq), target)
        for program in (self.train_program, self.forward_program):
            program.prepare()  # buffers and CPU kernels now, not inside the first step
        # Scalar feeds are reused arrays: the step writes into them instead of allocating new ones.
        self._lr = np.zeros((), np.float32)
        self._step = np.zeros((), np.float32)

    def parameters(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model parameters in `state` (what the forward Program reads), without the optimizer state."""
        return {v.name: state[v.name] for v in self.forward_program.graph.params()}

    def init_state(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Parameters plus zeroed optimizer state (m:<param>, v:<param>)."""
        return self.train_program.init_state(params)

    def state_signature(self, state: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
        """name -> (shape, dtype) of every state tensor, to check a checkpoint against the model."""
        return {name: (tuple(a.shape), str(a.dtype)) for name, a in state.items()}

    def train_step(self, state, tokens: np.ndarray, targets: np.ndarray, lr: float, step: int) -> StepResult:
        """One optimizer step (1-based `step`, used for Adam bias correction); updates `state` in place."""
        self._lr[...] = lr
        self._step[...] = step
        out = self.train_program.run(state, {"tokens": tokens, "targets": targets, "lr": self._lr, "step": self._step})
        return StepResult(float(out["loss"]), float(out["grad_norm"]))

    def loss(self, params, tokens: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy (nats per byte) of one batch, without updating anything."""
        out = self.forward_program.run(params, {"tokens": tokens, "targets": targets})
        return float(out["loss"])
