"""The corpus driver, local engine: exact merges, atomic output folders, flags, checkpoints surviving kill -9."""

from __future__ import annotations

import json
import signal
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.corpus.checkpoint import Checkpoint
from attnscope.corpus.driver import analyze
from attnscope.corpus.engines import LocalEngine, chunk_size, process_shard
from attnscope.corpus.output import replace_folder
from attnscope.corpus.protocol import ModelRef, dumps_state, loads_state
from attnscope.corpus.readers import read_corpus
from attnscope.errors import InputError
from attnscope.probe.coref_analysis import CorefAnalysis
from attnscope.probe.data import read_coref, read_treebank
from attnscope.probe.deps_analysis import DepsAnalysis, counts_of
from attnscope.probe.deps_report import deps_report
from corpus_support import cli, numbers, run_cli


def _dev(shared_data: Path) -> Path:
    return shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"


def _report(handle: Any, state: Any, treebank: Path) -> dict[str, Any]:
    return deps_report(ModelRef(handle.name, handle.info), counts_of(state), treebank, {})


def test_merge_is_exact_whatever_the_sharding(tiny: Any, shared_data: Path) -> None:
    handle, analysis, bs = tiny("bert"), DepsAnalysis(), 4
    sentences = list(read_treebank(_dev(shared_data), limit=5 * chunk_size(bs)))
    whole = process_shard(handle, analysis, 0, sentences, bs)
    size = chunk_size(bs)
    parts = [process_shard(handle, analysis, s, sentences[s : s + size], bs) for s in range(0, len(sentences), size)]
    # a different merge tree and order each time: ((4 + 0) + (2 + 3)) + 1
    left = analysis.merge(parts[4], parts[0])
    right = analysis.merge(parts[2], parts[3])
    merged = analysis.merge(analysis.merge(left, right), parts[1])
    assert _report(handle, merged, _dev(shared_data)) == _report(handle, whole, _dev(shared_data))
    assert merged.counts.examples == whole.counts.examples  # the same example sentences, from the same items
    driven, session = analyze(analysis, iter(sentences), handle, batch_size=bs)  # the driver, streaming
    assert session.stats.shards == 5
    assert _report(handle, driven, _dev(shared_data)) == _report(handle, whole, _dev(shared_data))


def test_state_round_trips_and_stays_small_without_torch(tiny: Any, shared_data: Path) -> None:
    handle, analysis = tiny("bert"), DepsAnalysis()
    state = process_shard(handle, analysis, 0, list(read_treebank(_dev(shared_data), limit=64)), 16)
    data = dumps_state(state)
    assert len(data) < 1_000_000
    back = loads_state(data)
    assert _report(handle, back, _dev(shared_data)) == _report(handle, state, _dev(shared_data))
    import torch

    with pytest.raises(InputError, match="torch object"):
        dumps_state({"bad": torch.zeros(1)})
    evil = b"cos\nsystem\n(S'echo hi'\ntR."  # pickle that would call os.system
    with pytest.raises(InputError, match="not a partial state"):
        loads_state(evil)


def test_coref_through_the_driver_keeps_corpus_order(tiny: Any, shared_data: Path) -> None:
    from attnscope.corpus.driver import run_analysis
    from attnscope.probe.coref import probe_coref

    items = list(read_coref(shared_data / "coref" / "wsc273.jsonl", limit=40))
    analysis = CorefAnalysis()
    with LocalEngine().open(tiny("bert")) as session:
        state = run_analysis(analysis, items, session, batch_size=2)
    reverse = analysis.new_state(tiny("bert").info)
    for s in reversed(range(0, len(items), chunk_size(2))):  # merged backwards: the result is the same
        reverse = analysis.merge(reverse, process_shard(tiny("bert"), analysis, s, items[s : s + chunk_size(2)], 2))
    a, b = analysis.result(state), analysis.result(reverse)
    assert np.array_equal(a.correct, b.correct)
    assert a.held_out_accuracy() == b.held_out_accuracy()
    assert np.array_equal(probe_coref(tiny("bert"), items, batch_size=2, progress=False).correct, a.correct)


def test_replace_folder_swaps_the_whole_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    replace_folder(out, {"report.json": '{"schema_version": 2, "analysis": "x"}', "heatmaps/old.png": b"1"})
    (out / "heatmaps" / "stale.png").write_bytes(b"stale")
    replace_folder(out, {"report.json": '{"schema_version": 2, "analysis": "x"}', "heatmaps/new.png": b"2"})
    assert sorted(p.name for p in (out / "heatmaps").iterdir()) == ["new.png"]
    # 'heatmaps' as a file in an earlier output does not break the next one
    (out / "heatmaps" / "new.png").unlink()
    (out / "heatmaps").rmdir()
    (out / "heatmaps").write_text("not a folder")
    replace_folder(out, {"report.json": '{"schema_version": 2, "analysis": "x"}', "heatmaps/a.png": b"3"})
    assert (out / "heatmaps" / "a.png").read_bytes() == b"3"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folders left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="other files"):
        replace_folder(mine, {"report.json": "{}"})
    assert (mine / "thesis.tex").exists()


def test_out_is_checked_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t.conllu"
    tree.write_text("1\tHi\thi\tX\tX\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    taken = tmp_path / "taken"
    taken.write_text("a file")
    missing_model = str(tmp_path / "no-such-model")
    for cmd in (
        ["probe", "deps", "--treebank", str(tree)],
        ["probe", "coref", "--data", str(tree)],
        ["probe", "train", "--treebank", str(tree), "--eval", str(tree)],
    ):
        assert main([*cmd, "--out", str(taken), "--model", missing_model]) == 2
        err = capsys.readouterr().err
        assert "is not a folder" in err
        assert "no-such-model" not in err
    out = tmp_path / "out"
    assert main(["probe", "deps", "--treebank", str(tree), "--out", str(out), "--checkpoint", str(out / "ck")]) == 2
    assert "outside --out" in capsys.readouterr().err


def test_cli_replaces_an_earlier_output_and_keeps_it_on_failure(
    tmp_path: Path, shared_data: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deps"
    args = ["probe", "deps", "--treebank", str(_dev(shared_data)), "--limit", "40", "--no-progress"]
    assert main([*args, "--out", str(out), "--model", str(tiny_model_dir), "--min-count", "1"]) == 0
    many = {p.name for p in (out / "heatmaps").iterdir()}
    assert main([*args, "--out", str(out), "--model", str(tiny_model_dir), "--min-count", "30"]) == 0
    few = {p.name for p in (out / "heatmaps").iterdir()}
    assert few < many  # heatmaps of relations below the new --min-count are gone, not left stale
    before = (out / "report.json").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": "a b c d", "pronoun": {"start": 0, "end": 1}, "candidates": [
            {"start": 2, "end": 5}, {"start": 4, "end": 7}], "answer": 0}) + "\n"
    )  # fmt: skip
    assert main(["probe", "coref", "--data", str(bad), "--out", str(out), "--model", str(tiny_model_dir)]) == 2
    assert "no usable coreference items" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before  # the failed run left the earlier output alone


def test_checkpoint_survives_kill_9_and_resumes_to_the_same_result(
    tmp_path: Path, shared_data: Path, tiny_model_dir: Path
) -> None:
    common = ["probe", "deps", "--treebank", _dev(shared_data), "--limit", "400", "--batch-size", "4"]
    common += ["--model", tiny_model_dir, "--no-progress"]
    code, _, err = run_cli(*common, "--out", tmp_path / "whole")
    assert code == 0, err
    ck = tmp_path / "ck"
    job = [*common, "--out", tmp_path / "resumed", "--checkpoint", ck, "--checkpoint-every", "32"]
    proc = cli(*job)
    deadline = time.monotonic() + 120
    while not (ck / "meta.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    done = json.loads((ck / "meta.json").read_text())["items_done"]
    assert 0 < done < 400
    assert not (tmp_path / "resumed").exists()  # nothing half-written

    other = run_cli(*[*job[:-4], "--out", tmp_path / "other", "--checkpoint", ck, "--max-offset", "5"])
    assert other[0] == 2
    assert "belongs to another job" in other[2]
    assert "max_offset" in other[2]

    code, _, err = run_cli(*job)
    assert code == 0, err
    assert f"{done} items done" in err or "items done" in err
    assert numbers(tmp_path / "resumed" / "report.json") == numbers(tmp_path / "whole" / "report.json")
    assert not ck.exists()  # a finished job removes its checkpoint


def test_checkpoint_refuses_garbage(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path, {"a": 1}, every=10)
    ck.save({"x": np.arange(3)}, 10)
    state, done = Checkpoint(tmp_path, {"a": 1}, every=10).load() or (None, 0)
    assert done == 10
    assert np.array_equal(state["x"], np.arange(3))
    with pytest.raises(InputError, match="another job"):
        Checkpoint(tmp_path, {"a": 2}, every=10).load()
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(InputError, match="unreadable"):
        Checkpoint(tmp_path, {"a": 1}, every=10).load()


def test_readers_stream_text_conllu_and_jsonl(tmp_path: Path, shared_data: Path) -> None:
    from attnscope.errors import DataFileError

    first = next(read_corpus(_dev(shared_data)))
    assert first.text  # the "# text" line, as written (not the words joined)
    assert sum(1 for _ in islice(read_corpus(_dev(shared_data)), 50)) == 50
    plain = tmp_path / "c.txt"
    plain.write_text("one text\n\n  two  \n", encoding="utf-8")
    assert [i.text for i in read_corpus(plain)] == ["one text", "two"]
    lines = tmp_path / "c.jsonl"
    lines.write_text('{"text": "A", "text_pair": "B"}\n{"text": "C"}\n', encoding="utf-8")
    assert [(i.text, i.text_pair) for i in read_corpus(lines)] == [("A", "B"), ("C", None)]
    lines.write_text('{"text": "A"}\n{"txt": "C"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"c\.jsonl:2"):
        list(read_corpus(lines))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataFileError, match="no texts"):
        list(read_corpus(tmp_path / "empty.txt"))
