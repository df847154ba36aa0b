"""--tokenizer bytes | bpe:N: a BPE trained on the training split, saved in the run directory, used by --resume and
`sample`; a spec whose vocab does not match is refused with the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from tilegraph.train import loop
from tilegraph.train.config import TrainConfig
from tilegraph.train.sample import Generator, generate, load_model, run_tokenizer
from tilegraph.train.tokenizer import BpeTokenizer, parse

from tilegraph.cli import main
from tilegraph.errors import DataError

SPECS = Path(__file__).resolve().parent.parent / "specs"
TEXT = ("ROMEO: But soft, what light through yonder window breaks?\nJULIET: O Romeo, Romeo, wherefore art thou?\n"
        * 40)  # fmt: skip


def _spec(vocab):
    return {**yaml.safe_load((SPECS / "gpt2-tiny.yaml").read_text()), "vocab_size": vocab, "num_layers": 1}


def test_parse_names_the_fix():
    assert parse("bytes") == ("bytes", 256) and parse("bpe:512") == ("bpe", 512)
    for bad in ("bpe", "bpe:100", "wordpiece:512", "bpe:x"):
        with pytest.raises(DataError, match="use bytes, or bpe:N"):
            parse(bad)


def test_bpe_round_trips_and_compresses():
    tok = BpeTokenizer.train(TEXT, "bpe:300")
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT
    assert ids.max() < 300 and len(ids) < len(TEXT.encode()) / 2  # merges of the repeated lines


def test_bpe_run_saves_resumes_and_samples(tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    cfg = TrainConfig(steps=4, batch=2, seq=16, warmup=1, eval_interval=2, eval_batches=1, data=str(data),
                      tokenizer="bpe:300", keep=5)  # fmt: skip
    run_dir = tmp_path / "run"
    run = loop.start_run(_spec(300), cfg, run_dir)
    assert (run_dir / "tokenizer.json").is_file()
    assert run.sampler.data.max() >= 256  # ids beyond the byte range: merged tokens
    cfg.steps = 2
    loop.train(run)
    # Resume: the saved tokenizer is loaded (not retrained) and the batches continue exactly.
    resumed = loop.resume_run(run_dir)
    resumed.config.steps = 4
    np.testing.assert_array_equal(resumed.sampler.data, run.sampler.data)
    loop.train(resumed)
    tok = run_tokenizer(run_dir)
    spec, params, context, _ = load_model(run_dir)
    text = generate(Generator(spec, params, context), "ROMEO:", 5, 0.8, 10, 0, tokenizer=tok)
    assert text.startswith("ROMEO:") and len(tok.encode(text)) >= 5


def test_vocab_mismatch_is_refused_with_the_fix(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_spec(256)))
    rc = main(["train", str(spec), "--tokenizer", "bpe:512", "--steps", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "vocab_size 256" in err and "set vocab_size: 512" in err
