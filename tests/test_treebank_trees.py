"""CoNLL-U sentences whose arcs are not one tree are skipped with a warning naming file:line, and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attnscope.cli import main
from attnscope.errors import DataFileError
from attnscope.probe.data import SkippedSentence, TreebankWarning, read_treebank


def _tree(sent_id: str, heads: list[int]) -> str:
    lines = [f"# sent_id = {sent_id}"]
    lines += [f"{i + 1}\tw{i}\tw\tX\tX\t_\t{h}\t{'root' if h == 0 else 'dep'}\t_\t_" for i, h in enumerate(heads)]
    return "\n".join(lines) + "\n\n"


FILE = (
    _tree("good-1", [2, 0, 2])  # lines 1-4
    + _tree("cycle", [2, 3, 1, 0])  # lines 6-10: words 1 -> 2 -> 3 -> 1; word 4 is the root
    + _tree("no-root", [2, 1])  # lines 12-14
    + _tree("two-roots", [0, 1, 0])  # lines 16-19
    + _tree("good-2", [0, 1])  # lines 21-23
)


def test_non_trees_are_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "t.conllu"
    path.write_text(FILE, encoding="utf-8")
    skipped: list[SkippedSentence] = []
    sentences = list(read_treebank(path, on_skip=skipped.append))
    assert [s.sent_id for s in sentences] == ["good-1", "good-2"]
    assert [(s.line, s.sent_id) for s in skipped] == [(7, "cycle"), (13, "no-root"), (19, "two-roots")]
    assert "a cycle (words 1 -> 2 -> 3 -> 1)" in skipped[0].reason
    assert skipped[1].reason == "no root (no word has HEAD 0)"
    assert skipped[2].reason == "2 roots (words 1, 3 have HEAD 0)"
    assert str(skipped[0]).startswith(f"{path}:7: skipped sentence cycle: ")
    with pytest.warns(TreebankWarning) as record:
        assert len(list(read_treebank(path, limit=2))) == 2  # skipped sentences do not count toward limit
    assert [str(w.message) for w in record] == [str(s) for s in skipped]


def test_a_file_of_non_trees_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(_tree("c", [2, 1]), encoding="utf-8")
    with pytest.raises(DataFileError, match="no usable sentences: all 1 were skipped"):
        list(read_treebank(path, on_skip=lambda s: None))


def test_probe_deps_warns_and_reports_skipped_sentences(
    tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.conllu"
    path.write_text(FILE, encoding="utf-8")
    out = tmp_path / "out"
    code = main(
        ["probe", "deps", "--treebank", str(path), "--model", str(tiny_folder), "--out", str(out), "--no-progress"]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"attnscope: warning: {path}:7: skipped sentence cycle" in err
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["sentences"] == 2
    assert report["data"]["skipped_sentences"] == 3
    assert [s["line"] for s in report["data"]["skipped"]] == [7, 13, 19]
    assert "3 sentences skipped" in (out / "report.md").read_text()


def test_probe_train_counts_skipped_sentences(
    tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.conllu"
    path.write_text(FILE, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["probe", "train", "--treebank", str(path), "--eval", str(path), "--epochs", "1"]
    assert main([*argv, "--model", str(tiny_folder), "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("attnscope: warning: ") == 6  # 3 in each file
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["skipped_not_trees"] == 3
    assert report["eval_data"]["skipped_not_trees"] == 3


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, wordpiece: Any) -> Path:
    import tiny_models

    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_models.build("bert").save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    return folder
