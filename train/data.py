"""Training data: a UTF-8 text file as bytes (vocab 256), split 90% train / 10% validation.

Training batches are random windows drawn by a seedable `BatchSampler` whose state can be saved in a checkpoint
and restored, so a resumed run sees exactly the batches an uninterrupted run would have seen. Validation uses
fixed, evenly spaced windows (`validation_batches`), so validation losses are comparable across steps and runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilegraph.errors import DataError

VOCAB_SIZE = 256  # byte-level: every UTF-8 byte is a token
TRAIN_FRACTION = 0.9
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"


@dataclass(frozen=True)
class TextData:
    """The bytes of one text file, split into a training and a validation part."""

    path: str
    train: np.ndarray  # uint8
    val: np.ndarray  # uint8
    sha256: str  # fingerprint of the whole file: a resumed run must train on the same data


def _split_point(num_bytes: int) -> int:
    return int(num_bytes * TRAIN_FRACTION)


def load_text(path: str | Path | None, seq: int) -> TextData:
    """Read a UTF-8 text file (default: the shipped tiny-shakespeare) and split it 90/10.

    Raises DataError when the file is missing, unreadable, empty, not UTF-8, or too short to hold one
    window of `seq` + 1 bytes in each of the two parts.
    """
    path = Path(path) if path is not None else DEFAULT_DATA
    if not path.exists():
        raise DataError(f"data file {path} does not exist; pass --data with a UTF-8 text file")
    if not path.is_file():
        raise DataError(f"data path {path} is not a file; pass --data with a UTF-8 text file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {e.strerror}") from None
    if not raw:
        raise DataError(f"data file {path} is empty; it needs UTF-8 text")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"data file {path} is not UTF-8 text (invalid byte at offset {e.start}); convert it to UTF-8"
        ) from None
    # Each part must hold at least one window of seq inputs plus the next-byte target.
    need = seq + 1
    split = _split_point(len(raw))
    if split < need or len(raw) - split < need:
        min_bytes = need
        while _split_point(min_bytes) < need or min_bytes - _split_point(min_bytes) < need:
            min_bytes += 1
        raise DataError(
            f"data file {path} has {len(raw)} bytes; with --seq {seq} it needs at least {min_bytes} bytes "
            f"(10% is held out for validation and each part needs {need} bytes); use a longer file or a smaller --seq"
        )
    data = np.frombuffer(raw, dtype=np.uint8)
    return TextData(str(path), data[:split], data[split:], hashlib.sha256(raw).hexdigest())


def _windows(data: np.ndarray, starts: np.ndarray, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """Input/target pairs for windows starting at `starts`: targets are the inputs shifted by one byte."""
    view = np.lib.stride_tricks.sliding_window_view(data, seq + 1)
    win = view[starts].astype(np.int32)
    return np.ascontiguousarray(win[:, :-1]), np.ascontiguousarray(win[:, 1:])


class BatchSampler:
    """Random training windows from a seeded PCG64 generator; `state()`/`set_state()` save and restore it."""

    def __init__(self, data: np.ndarray, batch: int, seq: int, seed: int):
        if len(data) < seq + 1:
            raise DataError(f"training data has {len(data)} bytes, fewer than one window of --seq {seq} + 1")
        self.data, self.batch, self.seq = data, batch, seq
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """tokens [batch, seq] int32 and targets [batch, seq] int32 (next byte of each token)."""
        starts = self.rng.integers(0, len(self.data) - self.seq, size=self.batch)
        return _windows(self.data, starts, self.seq)

    def state(self) -> dict:
        """JSON-serializable generator state (PCG64 state and increment as Python ints)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        try:
            self.rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as e:
            raise DataError(
                f"checkpoint holds an invalid data-sampler state ({e}); start a new run"
            ) from None


def validation_batches(
    data: np.ndarray, batch: int, seq: int, num_batches: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`num_batches` fixed batches of windows spread evenly over the validation part (no randomness).

    When the validation part is short, windows overlap; there are never more distinct windows than start
    positions, so a tiny file still gives a (small, repetitive) validation set rather than an error.
    """
    if len(data) < seq + 1:
        raise DataError(f"validation data has {len(data)} bytes, fewer than one window of --seq {seq} + 1")
    distinct = len(data) - seq  # start positions of distinct windows
    if num_batches > 1 and batch * (num_batches - 1) >= distinct:
        # Beyond this every further batch only repeats windows: more time and memory, no information.
        raise DataError(
            f"--eval-batches {num_batches}: the validation text holds only {distinct:,} distinct windows of "
            f"--seq {seq}, i.e. {max(1, -(-distinct // batch)):,} batches of --batch {batch}; use at most that many"
        )
    count = batch * num_batches
    starts = np.linspace(0, len(data) - seq - 1, num=count).round().astype(np.int64)
    tokens, targets = _windows(data, starts, seq)
    return [
        (tokens[i * batch : (i + 1) * batch], targets[i * batch : (i + 1) * batch])
        for i in range(num_batches)
    ]


def encode(text: str) -> np.ndarray:
    """Text -> byte token ids (int32)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)


def decode(tokens) -> str:
    """Byte token ids -> text; bytes that do not form valid UTF-8 (a sampled model can emit those) become U+FFFD."""
    return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")
