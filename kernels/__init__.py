"""Kernel sources (C++), shipped as package data: reader/compute/writer per op, and the host emulator in emu/."""

from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent
