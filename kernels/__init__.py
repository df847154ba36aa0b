"""Kernel sources (C++), shipped as package data: tt-metal reader/compute/writer per op, the host emulator of the
kernel API in emu/, and in cpu/ the fused CPU kernels of the numpy backend (loaded by tilegraph.ops.cpu_kernels)."""

from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent
