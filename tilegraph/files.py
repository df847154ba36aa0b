"""Writing files so that a crash, a kill or a full disk never leaves half of one: the one mechanism every
command uses (checkpoints, best.safetensors, loss.png, config.json, `lower --json`, saved fuzz cases).

`write_atomic(path, data)` writes bytes (or lets a callback write into a binary file object) to a temporary
file `.<name>.<random>.tmp` in the target's folder, fsyncs it, then `os.replace`s it over the target, so
readers see the old file or the complete new one. Any failure removes the temporary file and raises
`FileError` naming the path and the cause. A process killed with SIGKILL mid-write can still leave a
temporary file; `remove_stale_temporaries(folder)` deletes those (they are never valid files).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tilegraph.errors import FileError

_TMP_SUFFIX = ".tmp"


def _file_mode() -> int:
    # mkstemp creates 0600; a finished file gets the mode open() would give it (0666 minus the umask).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def describe_os_error(path: str | os.PathLike, e: OSError) -> str:
    """'<path>: <reason>' with a hint for the causes a user can fix."""
    reason = e.strerror or str(e)
    hint = {
        errno.ENOSPC: "; free some space or choose another folder",
        errno.EDQUOT: "; free some space or choose another folder",
        errno.EROFS: "; the file system is read-only, choose another folder",
        errno.EACCES: "; choose a folder you can write to",
        errno.EPERM: "; choose a folder you can write to",
        errno.ENOENT: "; create the folder first or choose an existing one",
        errno.ENOTDIR: "; a part of the path is a file, not a folder",
        errno.EISDIR: "; it is a folder, name a file inside it",
    }.get(e.errno, "")
    return f"{path}: {reason}{hint}"


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, not only the file contents (POSIX; a no-op where unsupported).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write `data` (bytes, or a function that writes into the open binary file) to `path` atomically."""
    path = Path(path)
    if path.is_dir():
        raise FileError(f"cannot write {path}: it is a folder; name a file inside it")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise FileError(f"cannot write {describe_os_error(path, e)}") from None
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # Includes KeyboardInterrupt and a full disk: never leave the temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise FileError(f"cannot write {describe_os_error(path, e)}") from None
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `write_atomic` leaves when its process is killed mid-write; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in directory.glob(f".*{_TMP_SUFFIX}"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def ensure_writable_dir(directory: str | os.PathLike, what: str) -> Path:
    """Create `directory` if needed and prove it accepts a file (write, fsync, delete a probe); FileError
    naming `what` (e.g. "--out") otherwise. Run it before long work, not at the first save."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileError(f"{what} {directory} is a file, not a folder; name a folder (new or existing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileError(f"{what}: cannot create {describe_os_error(directory, e)}") from None
    try:
        write_atomic(directory / ".write-probe", b"tilegraph write probe\n")
        (directory / ".write-probe").unlink()
    except FileError as e:
        raise FileError(f"{what}: {directory} is not writable ({e})") from None
    return directory


def ensure_free_space(directory: str | os.PathLike, need_bytes: int, what: str) -> None:
    """FileError unless the file system of `directory` has `need_bytes` free (a full disk found up front)."""
    try:
        import shutil

        free = shutil.disk_usage(directory).free
    except OSError:
        return  # cannot tell; the atomic writes still fail cleanly
    if free < need_bytes:
        raise FileError(
            f"{directory} has {free / 2**20:,.1f} MiB free; {what} needs about {need_bytes / 2**20:,.1f} MiB; "
            f"free some space or choose another folder"
        )


def ensure_writable_file(path: str | os.PathLike, what: str) -> Path:
    """Check, before long work, that `path` can be written as a file: its folder exists and it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise FileError(f"{what} {path} is a folder; name a file, e.g. {path / 'out.json'}")
    parent = path.parent
    if not parent.is_dir():
        raise FileError(f"{what} {path}: the folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise FileError(f"{what} {path}: the folder {parent} is not writable; choose another path")
    return path
