"""Run one conformance parse (a g++ -fsyntax-only command) and fail on what -fpermissive would hide in our kernels.

The real tt-metal headers target 32-bit RISC-V, so on a 64-bit host they only parse with -fpermissive, which turns
their pointer <-> uint32_t casts from errors into warnings. The same flag would also turn a real kernel bug into a
warning (a pointer passed where tt-metal takes a page count, an int where it takes a pointer), so the check may not
simply silence warnings: it prints nothing and exits 0 when the parse succeeds and no diagnostic tagged
[-fpermissive] is located in one of the kernel source folders given with --kernel-dir; it prints those diagnostics
and exits 1 when there are some; it prints the whole compiler output and exits with its status when the parse fails.
Diagnostics located in the tt-metal headers (the 64-bit casts) are not the kernel's and are ignored.

Usage: parse_check.py --kernel-dir DIR [--kernel-dir DIR ...] -- g++ ARGS... SOURCE
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?:warning|error): .*\[-fpermissive\]$")


def permissive_diagnostics(output: str, kernel_dirs: list[str]) -> list[str]:
    """Lines of compiler output that are -fpermissive diagnostics located in a file under one of `kernel_dirs`."""
    roots = [os.path.realpath(d) + os.sep for d in kernel_dirs]
    hits = []
    for line in output.splitlines():
        m = DIAGNOSTIC.match(line)
        if m and any(os.path.realpath(m["file"]).startswith(r) for r in roots):
            hits.append(line)
    return hits


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, cmd = argv[:split], argv[split + 1:]
    kernel_dirs = [opts[i + 1] for i, a in enumerate(opts) if a == "--kernel-dir"]
    # plain output: one line per diagnostic, no carets or colours, so the location is always at the line start
    proc = subprocess.run([*cmd, "-fdiagnostics-plain-output"], capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stdout.write(output)
        return proc.returncode
    hits = permissive_diagnostics(output, kernel_dirs)
    if hits:
        print(f"conformance: {len(hits)} diagnostic(s) in the kernel source that only -fpermissive lets through "
              f"(a real error on the device compiler): fix the kernel")
        print("\n".join(hits))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
