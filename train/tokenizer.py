"""Tokenizers of the trainer: `bytes` (every UTF-8 byte a token, vocab 256) or `bpe:N`, a byte-level BPE of N tokens
trained on the training split of the data with the `tokenizers` package.

A BPE run saves its tokenizer as <run dir>/tokenizer.json; `--resume` and `tilegraph sample` load it from there, so
the ids a checkpoint was trained on never change. The spec's vocab_size must equal N (bytes: at least 256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tilegraph.train.data import VOCAB_SIZE

from tilegraph.errors import DataError

FILE = "tokenizer.json"


def parse(name: str) -> tuple[str, int]:
    """'bytes' -> ('bytes', 256); 'bpe:N' -> ('bpe', N); anything else is a DataError naming the fix."""
    if name == "bytes":
        return "bytes", VOCAB_SIZE
    kind, _, n = name.partition(":")
    if kind == "bpe" and n.isdigit() and int(n) > VOCAB_SIZE:
        return "bpe", int(n)
    raise DataError(f"--tokenizer {name!r}: use bytes, or bpe:N with N > {VOCAB_SIZE} (e.g. bpe:1024)")


class ByteTokenizer:
    name, vocab_size = "bytes", VOCAB_SIZE

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        # bytes that do not form valid UTF-8 (a sampled model can emit those) become U+FFFD
        return bytes(int(t) for t in ids).decode("utf-8", errors="replace")


class BpeTokenizer:
    def __init__(self, tok, name: str):
        self.tok, self.name = tok, name
        self.vocab_size = parse(name)[1]

    @classmethod
    def train(cls, text: str, name: str) -> BpeTokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        _, n = parse(name)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=n, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tok, name)

    @classmethod
    def load(cls, path: Path, name: str) -> BpeTokenizer:
        from tokenizers import Tokenizer

        if not path.is_file():
            raise DataError(f"{path} is missing: the run was trained with --tokenizer {name}; restore the file")
        return cls(Tokenizer.from_file(str(path)), name)

    def save(self, path: Path) -> None:
        self.tok.save(str(path))

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tok.encode(text).ids, dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tok.decode([int(t) for t in ids])


def for_run(name: str, run_dir: Path, train_text: str | None = None):
    """The tokenizer a run uses: bytes; or its BPE, trained on `train_text` and saved when new, else loaded."""
    kind, _ = parse(name)
    if kind == "bytes":
        return ByteTokenizer()
    path = Path(run_dir) / FILE
    if train_text is None or path.is_file():
        return BpeTokenizer.load(path, name)
    tok = BpeTokenizer.train(train_text, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(path)
    return tok


def tokenize(data, name: str, run_dir: Path, seq: int, new: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, validation ids) of a TextData: its bytes as they are for `bytes`; for bpe:N the two parts
    encoded with the run's BPE (trained on the training part and saved when `new`, else loaded)."""
    if parse(name)[0] == "bytes":
        return data.train, data.val
    train_text = data.train.tobytes().decode("utf-8", errors="ignore")  # the 90% cut may split a character
    val_text = data.val.tobytes().decode("utf-8", errors="ignore")
    tok = for_run(name, run_dir, train_text if new else None)
    ids = tok.encode(train_text), tok.encode(val_text)
    for what, part in zip(("training", "validation"), ids):
        if len(part) < seq + 1:
            raise DataError(
                f"the {what} part is {len(part)} tokens with --tokenizer {name}, fewer than one window of "
                f"--seq {seq} + 1; use a smaller --seq or a longer --data file"
            )
    return ids


def check_vocab(spec, name: str) -> None:
    """The spec's embedding must hold every id: exactly N for bpe:N, at least 256 for bytes."""
    kind, n = parse(name)
    if kind == "bytes":
        if spec.vocab_size < VOCAB_SIZE:
            raise DataError(
                f"spec {spec.name!r} has vocab_size {spec.vocab_size}; byte-level text needs at least {VOCAB_SIZE}"
            )
    elif spec.vocab_size != n:
        raise DataError(
            f"spec {spec.name!r} has vocab_size {spec.vocab_size} but --tokenizer {name} makes {n} tokens; "
            f"set vocab_size: {n} in the spec or use --tokenizer bpe:{spec.vocab_size}"
        )
