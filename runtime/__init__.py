"""tilegraph.runtime: the Program that tilegraph.compiler.compile returns, and the backends that run it (numpy, emu,
mesh; ttnn for single kernel ops)."""

from tilegraph.runtime.program import BACKENDS, Buffer, Program, Step  # noqa: F401
