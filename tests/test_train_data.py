"""Training data: file checks, the 90/10 split, window sampling and its reproducibility, fixed validation windows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.train.data import DEFAULT_DATA, BatchSampler, decode, encode, load_text, validation_batches

from tilegraph.errors import DataError


def _write(tmp_path, content: bytes, name="text.txt"):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_shipped_tinyshakespeare_splits_90_10():
    raw = DEFAULT_DATA.read_bytes()
    data = load_text(None, seq=256)
    assert len(data.train) + len(data.val) == len(raw)
    assert len(data.train) == int(len(raw) * 0.9)
    assert bytes(data.train[:20]) == raw[:20]  # train is the beginning, validation the end
    assert bytes(data.val[-20:]) == raw[-20:]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data"):
        load_text(tmp_path / "nope.txt", seq=8)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        load_text(tmp_path, seq=8)


def test_empty_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        load_text(_write(tmp_path, b""), seq=8)


def test_non_utf8_file_names_the_offset(tmp_path):
    with pytest.raises(DataError, match="not UTF-8 text .*offset 3"):
        load_text(_write(tmp_path, b"abc\xff" + b"x" * 500), seq=8)


def test_too_short_file_says_how_long_it_must_be(tmp_path):
    # seq 8 -> windows of 9 bytes. 81 bytes split into 72 + 9; 80 bytes into 72 + 8 (too few for validation).
    with pytest.raises(DataError, match=r"has 50 bytes; with --seq 8 it needs at least 81 bytes"):
        load_text(_write(tmp_path, b"a" * 50), seq=8)
    with pytest.raises(DataError, match=r"has 80 bytes"):
        load_text(_write(tmp_path, b"a" * 80, "short.txt"), seq=8)
    data = load_text(_write(tmp_path, b"a" * 81, "ok.txt"), seq=8)
    assert len(data.val) == 9


def test_any_utf8_text_works(tmp_path):
    text = "Ünïcödé — 日本語のテキスト. " * 40
    data = load_text(_write(tmp_path, text.encode()), seq=16)
    assert bytes(data.train).decode("utf-8", errors="ignore").startswith("Ünïcödé")
    assert decode(encode(text)) == text


@settings(deadline=None, max_examples=40, derandomize=True, database=None)
@given(batch=st.integers(1, 6), seq=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_windows_are_substrings_with_targets_shifted_by_one(batch, seq, seed):
    data = np.frombuffer(
        np.random.default_rng(seed).integers(0, 256, 300, dtype=np.uint8).tobytes(), np.uint8
    )
    tokens, targets = BatchSampler(data, batch, seq, seed).next_batch()
    assert tokens.shape == targets.shape == (batch, seq)
    assert tokens.dtype == targets.dtype == np.int32
    haystack = data.tobytes()
    for row_x, row_y in zip(tokens, targets):
        window = bytes(row_x.astype(np.uint8)) + bytes(row_y[-1:].astype(np.uint8))
        assert window in haystack
        np.testing.assert_array_equal(row_x[1:], row_y[:-1])


def test_sampler_is_reproducible_and_restorable():
    data = load_text(None, seq=64).train
    a, b = BatchSampler(data, 4, 64, seed=7), BatchSampler(data, 4, 64, seed=7)
    for _ in range(3):
        np.testing.assert_array_equal(a.next_batch()[0], b.next_batch()[0])
    other = BatchSampler(data, 4, 64, seed=8)
    assert not np.array_equal(other.next_batch()[0], BatchSampler(data, 4, 64, seed=7).next_batch()[0])

    saved = a.state()
    expected = [a.next_batch()[0] for _ in range(3)]
    restored = BatchSampler(data, 4, 64, seed=12345)  # a different seed: the restored state must win
    restored.set_state(saved)
    for want in expected:
        np.testing.assert_array_equal(restored.next_batch()[0], want)


def test_sampler_state_is_json_serializable():
    import json

    s = BatchSampler(load_text(None, seq=32).train, 2, 32, seed=1)
    s.next_batch()
    restored = BatchSampler(s.data, 2, 32, seed=0)
    restored.set_state(json.loads(json.dumps(s.state())))
    np.testing.assert_array_equal(restored.next_batch()[0], s.next_batch()[0])


def test_corrupt_sampler_state_is_a_data_error():
    s = BatchSampler(np.zeros(100, np.uint8), 2, 8, seed=1)
    with pytest.raises(DataError, match="sampler state"):
        s.set_state({"bit_generator": "MT19937", "state": {}})


def test_validation_batches_are_fixed_and_cover_the_validation_part():
    val = load_text(None, seq=32).val
    first = validation_batches(val, 4, 32, 5)
    again = validation_batches(val, 4, 32, 5)
    assert len(first) == 5
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # The first window starts at the beginning, the last one ends at the end of the validation part.
    np.testing.assert_array_equal(first[0][0][0], val[:32])
    np.testing.assert_array_equal(first[-1][1][-1], val[-32:])
