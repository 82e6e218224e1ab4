"""``attnscope heads`` / ``attnscope find`` on the corpus driver: reports, equality with the Python API, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main

TEXTS = ["The cat sat on the mat , and it purred .", "Dogs bark at night .", "It rained ; the cat stayed in ."]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join([TEXTS[0], "", *TEXTS[1:]]) + "\n", encoding="utf-8")
    return path


def run(*argv: str) -> int:
    return main([*argv, "--no-progress"])


def test_heads_report(corpus: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "atlas"
    assert run("heads", "--corpus", str(corpus), "--model", str(tiny_model_dir), "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1
    assert report["sentences"] == 3
    assert report["analysis"] == "heads"
    assert len(report["heads"]) == 2
    assert {"role", "score", "stats"} <= set(report["heads"][1][3])
    assert set(report["layers"][0]) == {"cls", "sep", "punct", "other"}
    assert "tokens attend to [SEP] in upper layers" in capsys.readouterr().out


def test_find_equals_the_python_api(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import attnscope
    from attnscope.heads import find_heads

    handle = attnscope.load(str(tiny_model_dir), device="cpu")
    out = tmp_path / "find"
    assert run("find", "--corpus", str(corpus), "--pattern", "previous", "--model", str(tiny_model_dir),
               "--out", str(out)) == 0  # fmt: skip
    ranking = json.loads((out / "report.json").read_text())["ranking"]
    assert ranking == find_heads(handle, TEXTS, pattern="previous").to_json()["ranking"]
    assert run("find", "--corpus", str(corpus), "--from", "it", "--to", "cat", "--model", str(tiny_model_dir),
               "--out", str(out), "--bootstrap", "200") == 0  # fmt: skip
    pairs = json.loads((out / "report.json").read_text())
    assert pairs["ranking"] == find_heads(handle, TEXTS, from_word="it", to_word="cat", n_boot=200).ranking()
    assert run("find", "--pattern", "induction", "--generated", "--n-sequences", "3", "--span", "8",
               "--model", str(tiny_model_dir), "--out", str(out)) == 0  # fmt: skip
    generated = json.loads((out / "report.json").read_text())
    expected = find_heads(handle, pattern="induction", generated=True, n_sequences=3, span=8)
    assert generated["ranking"] == expected.ranking()


def test_pairs_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"text": TEXTS[0], "from": [29, 31], "to": [4, 7]}) + "\n", encoding="utf-8")
    out = tmp_path / "find"
    assert run("find", "--pairs", str(pairs), "--model", str(tiny_model_dir), "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["examples"][0]["from"] == [29, 31]
    assert len(report["ranking"]) == 8


def test_merge_under_another_sharding_equals_one_pass(tiny: Callable[[str], Any]) -> None:
    from attnscope.corpus.engines import process_shard
    from attnscope.corpus.readers import TextItem
    from attnscope.heads.analysis import HeadsAnalysis

    handle = tiny("bert")
    items = [TextItem(t) for t in TEXTS * 3]
    analysis = HeadsAnalysis(max_offset=3)
    # batch size 1: no padding, so each item's trace is the same bits in any shard (engines shard whole chunks)
    whole = process_shard(handle, analysis, 0, items, 1)
    parts = [process_shard(handle, analysis, s, items[s : s + 4], 1) for s in range(0, len(items), 4)]
    merged = analysis.merge(analysis.merge(parts[2], parts[0]), parts[1])
    assert merged.finalize().to_json() == whole.finalize().to_json()
    assert np.array_equal(merged.distances.js_sum, whole.distances.js_sum)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["heads", "--corpus", "{empty}"], "no texts found"),
        (["heads", "--corpus", "{corpus}", "--stack", "decoder"], "has no decoder attention"),
        (["find", "--corpus", "{corpus}", "--from", "dog", "--to", "cat"], "no text holds both 'dog' and 'cat'"),
        (["find", "--corpus", "{corpus}", "--pattern", "{small}"], "the pattern is 3x3"),
        (["find", "--corpus", "{corpus}", "--pattern", "sideways"], "unknown pattern 'sideways'"),
        (["find", "--corpus", "{corpus}", "--pattern", "previous", "--from", "a", "--to", "b"], "one question"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    argv: list[str], message: str, corpus: Path, tiny_model_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    np.save(tmp_path / "small.npy", np.eye(3))
    paths = {"{empty}": str(empty), "{corpus}": str(corpus), "{small}": str(tmp_path / "small.npy")}
    out = tmp_path / "out"
    args = [paths.get(a, a) for a in argv]
    assert run(*args, "--model", str(tiny_model_dir), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_too_long_lines_are_skipped_and_counted(tiny_model_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "long.txt"
    corpus.write_text("word " * 600 + "\n" + TEXTS[0] + "\n", encoding="utf-8")
    out = tmp_path / "atlas"
    assert run("heads", "--corpus", str(corpus), "--model", str(tiny_model_dir), "--out", str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["sentences"], report["skipped"]) == (1, {"too_long": 1})
    assert run("heads", "--corpus", str(corpus), "--model", str(tiny_model_dir), "--out", str(out), "--truncate") == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["sentences"], report["skipped"]) == (2, {})
