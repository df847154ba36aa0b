"""One error hierarchy. Messages name the file/field/op and say what to change."""


class TilegraphError(Exception):
    """Base of every error tilegraph raises on bad input; the CLI prints it on one line and exits 2."""


class SpecError(TilegraphError):
    """A model spec is malformed: unknown key, wrong type, inconsistent sizes."""


class ShapeError(TilegraphError):
    """An op got inputs whose shapes or dtypes it cannot accept."""


class ShardingError(TilegraphError):
    """A graph cannot be sharded over the requested mesh (or does not fit its memory)."""


class KernelError(TilegraphError):
    """A custom kernel failed to build, misused the kernel API, or deadlocked in the emulator."""


class DeviceError(TilegraphError):
    """A device backend cannot run (no card, ttnn missing, unsupported step)."""


class DataError(TilegraphError):
    """Training data or a checkpoint is missing, empty, corrupt or does not match."""


class FileError(TilegraphError):
    """A file or folder cannot be read or written (missing folder, read-only, full disk, a file where a folder
    should be); the message names the path and what to change."""


class SetupError(TilegraphError):
    """This machine lacks something tilegraph needs (a C++ compiler, ttnn): a problem of the environment, not of
    a kernel or of the input."""
