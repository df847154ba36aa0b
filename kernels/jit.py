"""Compiling C++ on the host at first use, cached on disk: shared by the kernel emulator (kernels/emu) and the
CPU kernels of the numpy backend (kernels/cpu).

Builds are keyed by a hash of their sources and flags, written atomically (several processes may build the
same file at once) and kept in a cache folder that survives across runs.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from tilegraph.kernels import KERNEL_DIR

from tilegraph.errors import KernelError, SetupError

CXX = os.environ.get("CXX", "g++")


def cache_dir(name: str, env_var: str) -> Path:
    """$env_var, else ~/.cache/tilegraph/<name>, else (home not writable) build/<name>-cache in the repo."""
    env = os.environ.get(env_var)
    candidates = [Path(env)] if env else [Path.home() / ".cache" / "tilegraph" / name,
                                          KERNEL_DIR.parent / "build" / f"{name}-cache"]
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise KernelError(f"no writable {name} cache directory (tried {', '.join(map(str, candidates))}); "
                      f"set {env_var} to a writable folder")


def compile_to(cmd: list[str], out: Path, what: str, purpose: str) -> None:
    """Run a compiler command writing `out` atomically; a failure raises KernelError("<what> failed to compile
    <purpose>: <compiler message>")."""
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        proc = subprocess.run([*cmd, "-o", str(tmp)], check=False, capture_output=True, text=True)
    except FileNotFoundError:
        raise SetupError(f"{what}: the C++ compiler {cmd[0]!r} was not found; install g++ or set CXX") from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise KernelError(f"{what} failed to compile {purpose}:\n{proc.stderr.strip()[-4000:]}")
    os.replace(tmp, out)
