"""tilegraph.runtime: compile a Graph into a Program and run it on a backend (numpy, emu, mesh, ttnn)."""

from tilegraph.runtime.program import BACKENDS, Buffer, Program, Step, compile  # noqa: F401
