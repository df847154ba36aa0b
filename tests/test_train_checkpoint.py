"""Checkpoints: round trip, atomic writes (a save that dies leaves the previous file loadable), damaged files,
keep-last-K and the best-validation link."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tilegraph.train.checkpoint import RunCheckpoints, check_tensors_match, load_checkpoint, save_checkpoint

from tilegraph import files as files_mod
from tilegraph.errors import DataError, FileError


def _tensors(seed: int, n: int = 1000):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((n, 4)).astype(np.float32),
        "m:w": rng.standard_normal((n, 4)).astype(np.float32),
    }


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    tensors = _tensors(0)
    meta = {
        "step": 7,
        "spec": {"name": "x"},
        "config": {"batch": 2},
        "sampler": {"state": {"state": 2**100 + 3}},
    }
    path = save_checkpoint(tmp_path / "c.safetensors", tensors, meta)
    ck = load_checkpoint(path)
    assert ck.step == 7
    assert ck.meta["sampler"]["state"]["state"] == 2**100 + 3  # big ints survive the JSON metadata
    for name, t in tensors.items():
        np.testing.assert_array_equal(ck.tensors[name], t)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


def test_failure_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _tensors(1), {"step": 1, "spec": {}, "config": {}})

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_mod.os, "fsync", failing_fsync)
    with pytest.raises(FileError, match="c.safetensors: No space left on device; free some space"):
        save_checkpoint(path, _tensors(2), {"step": 2, "spec": {}, "config": {}})
    monkeypatch.undo()
    ck = load_checkpoint(path)
    assert ck.step == 1
    np.testing.assert_array_equal(ck.tensors["w"], _tensors(1)["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_process_killed_during_save_leaves_previous_checkpoint(tmp_path):
    """A real writer process is SIGKILLed after the new bytes are written but before the rename."""
    path = tmp_path / "c.safetensors"
    child = textwrap.dedent(
        f"""
        import os, sys, time
        import numpy as np
        from tilegraph.train import checkpoint as c
        big = {{"w": np.full((1 << 20,), 1.0, np.float32)}}
        c.save_checkpoint({str(path)!r}, big, {{"step": 1, "spec": {{}}, "config": {{}}}})
        def stuck_fsync(fd):
            print("saving", flush=True)
            time.sleep(60)
        from tilegraph import files
        files.os.fsync = stuck_fsync
        big["w"][:] = 2.0
        c.save_checkpoint({str(path)!r}, big, {{"step": 2, "spec": {{}}, "config": {{}}}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saving"
        proc.kill()
    finally:
        proc.wait(timeout=30)
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 4 << 20  # the new bytes were on their way
    ck = load_checkpoint(path)
    assert ck.step == 1 and float(ck.tensors["w"].max()) == 1.0
    RunCheckpoints(tmp_path).remove_stale_temporaries()
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"\x00" * 8 + b[8:],  # header length destroyed
        lambda b: b"not a checkpoint at all",
    ],
)
def test_damaged_checkpoint_is_a_data_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.safetensors", _tensors(3), {"step": 3, "spec": {}, "config": {}})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(path)


def test_foreign_safetensors_file_is_a_data_error(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DataError, match="no tilegraph metadata"):
        load_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_mismatched_tensors_are_named(tmp_path):
    ck = load_checkpoint(
        save_checkpoint(tmp_path / "c.safetensors", _tensors(4), {"step": 1, "spec": {}, "config": {}})
    )
    check_tensors_match(ck, {"w": ((1000, 4), "float32"), "m:w": ((1000, 4), "float32")})
    with pytest.raises(
        DataError, match=r"tensor 'w' is float32\[1000, 4\], the model needs float32\[1000, 8\]"
    ):
        check_tensors_match(ck, {"w": ((1000, 8), "float32"), "m:w": ((1000, 4), "float32")})
    with pytest.raises(DataError, match=r"missing \['v:w'\]"):
        check_tensors_match(
            ck, {"w": ((1000, 4), "float32"), "m:w": ((1000, 4), "float32"), "v:w": ((1000, 4), "float32")}
        )


def test_keeps_last_k_and_best(tmp_path):
    store = RunCheckpoints(tmp_path, keep=2)
    val = {1: 3.0, 2: 2.0, 3: 2.5, 4: 2.6}
    for step, loss in val.items():
        store.save(
            step,
            _tensors(step, n=10),
            {"step": step, "spec": {}, "config": {}},
            is_best=loss == min(v for s, v in val.items() if s <= step),
        )
    assert store.steps() == [3, 4]
    assert load_checkpoint(store.latest()).step == 4
    best = load_checkpoint(store.best_path)
    assert best.step == 2  # survives the pruning of its step file
    np.testing.assert_array_equal(best.tensors["w"], _tensors(2, n=10)["w"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
