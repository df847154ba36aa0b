"""Bad inputs to `tilegraph lower` are one-line errors with exit code 2 that say what to change."""

import pytest
from tilegraph.graph.build import build
from tilegraph.graph.passes.shard import shard

from tilegraph.cli import main
from tilegraph.errors import ShardingError


def _lower(capsys, *argv):
    code = main(["lower", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(capsys, *argv) -> str:
    code, out, err = _lower(capsys, *argv)
    assert code == 2
    assert out == ""  # nothing half-printed before the error
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tilegraph lower: error: ")
    return lines[0]


def test_unknown_mesh_lists_the_valid_names(capsys):
    msg = _one_line_error(capsys, "specs/nano-trickster.yaml", "--mesh", "dgx")
    assert "unknown mesh 'dgx'" in msg
    for name in ("n150", "n300", "t3k", "t3k-1x8", "galaxy", "p150"):
        assert name in msg


def test_heads_not_divisible_by_tp_degree(capsys):
    # tiny-test has 4 heads; galaxy's TP axis has 8 devices.
    msg = _one_line_error(capsys, "specs/tiny-test.yaml", "--mesh", "galaxy", "--batch", "4", "--seq", "8")
    assert "num_heads 4 is not divisible by the tensor-parallel degree 8" in msg


def test_batch_not_divisible_by_dp_degree(capsys):
    # t3k is 2x4: TP 4 on axis 1, DP 2 on axis 0.
    msg = _one_line_error(capsys, "specs/nano-trickster.yaml", "--mesh", "t3k", "--batch", "3", "--seq", "16")
    assert "batch 3" in msg and "data-parallel degree 2" in msg


def test_model_that_does_not_fit_says_by_how_much(capsys):
    msg = _one_line_error(capsys, "specs/llama-3-70b.yaml", "--mesh", "n150", "--seq", "128", "--weights", "bfloat16")
    assert "over by" in msg and "GiB" in msg and "12.0 GiB" in msg
    # llama-3-70b prefill on one chip: bfloat16 weights alone are ~131 GiB
    need = float(msg.split(" needs ")[1].split(" GiB")[0])
    assert 131 < need < 140
    # the prefill defaults (bfp4 MLP: 80*3*8192*28672*576/1024 B = 29.5 GiB; bfp8 attention:
    # 80*8192*18432*1088/1024 B = 12.0 GiB; bf16 embedding 1.96 GiB; bfp8 lm_head 1.04 GiB) need ~44.5 GiB
    msg = _one_line_error(capsys, "specs/llama-3-70b.yaml", "--mesh", "n150", "--seq", "128")
    need = float(msg.split(" needs ")[1].split(" GiB")[0])
    assert 44.5 < need < 46


def test_same_model_fits_on_a_bigger_mesh(capsys):
    code, out, err = _lower(capsys, "specs/llama-3-8b.yaml", "--mesh", "t3k-1x8", "--seq", "2048", "--brief")
    assert code == 0, err
    assert "peak DRAM" in out and "DOES NOT FIT" not in out and "tokens/s" in out


def test_sharding_a_sharded_graph_is_rejected():
    g = shard(build("specs/nano-trickster.yaml", 2, 8), "n300")
    with pytest.raises(ShardingError, match="already sharded"):
        shard(g, "n300")


def test_replication_fallback_is_reported(capsys):
    # tiny-test: 4 query heads over 2 KV heads on TP 4 -> one query head per device cannot cover both KV groups
    code, out, err = _lower(capsys, "specs/tiny-test.yaml", "--mesh", "t3k", "--batch", "4", "--seq", "8", "--brief")
    assert code == 0, err
    assert "note: fallback: attention replicated over TP 4" in out


def test_notes_name_the_real_conditions():
    """The KV replication note states divisibility (kv_heads 12 on TP 8 is not 'fewer than devices'); a tied
    embedding under TP says that the output projection is replicated."""
    from tilegraph.graph.build import build
    from tilegraph.graph.passes.shard import shard

    spec = {"name": "kv12", "vocab_size": 64, "hidden_size": 192, "num_layers": 1, "num_heads": 96,
            "num_kv_heads": 12, "mlp_hidden": 64, "max_seq_len": 8, "tie_embeddings": True}  # fmt: skip
    notes = shard(build(spec, 1, 8), "t3k-1x8").shard_notes
    assert any("kv_heads 12 not divisible by TP 8" in n for n in notes), notes
    assert not any("<" in n for n in notes)
    assert any(n.startswith("tied embeddings: the output projection (the 64 x 192 embedding table) runs replicated "
                            "over TP 8") for n in notes), notes  # fmt: skip
    untied = shard(build({**spec, "tie_embeddings": False}, 1, 8), "t3k-1x8").shard_notes
    assert not any("tied" in n for n in untied)


def test_mesh_backend_refuses_an_unsharded_program():
    from tilegraph.graph.spec import load_spec

    from tilegraph.compiler import compile
    from tilegraph.errors import DeviceError

    prog = compile(build(load_spec("specs/tiny-test.yaml"), 1, 4))  # compiled for the numpy backend
    with pytest.raises(DeviceError, match=r"graph 'tiny-test.forward' is not sharded; compile it with "
                                          r"Target\(backend=\"mesh\", mesh=\.\.\.\)"):
        prog.prepare("mesh")
