"""Kernel sources (C++), shipped as package data: tt-metal reader/compute/writer per op, the host emulator of the
kernel API in emu/, and in cpu/ the fused CPU kernels of the numpy backend (loaded by tilegraph.ops.cpu_kernels)."""

from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent


def ttnn_kernel_path(path: str) -> Path | None:
    """Absolute path of one of tt-metal's own kernels inside the installed ttnn wheel, named as tt-metal's program
    factories name it in CreateKernel (e.g. "ttnn/cpp/ttnn/operations/eltwise/unary/device/kernels/compute/
    eltwise_sfpu.cpp" or "tt_metal/kernels/..."); None when ttnn or that file is not installed. The result can be a
    KernelSpec.source (absolute sources are used as they are). Found without importing ttnn (no device runtime)."""
    import importlib.util

    spec = importlib.util.find_spec("ttnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / path
    return p if p.is_file() else None
