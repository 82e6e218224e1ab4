"""The files of ``attnscope heads`` / ``attnscope find``: report.md and PNG figures exist, agree with report.json,
show corpus text escaped, are byte-for-byte repeatable, and a failure leaves the earlier output untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attnscope.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
HOSTILE = "Dogs bark <img src=x onerror=alert(1)> at | night *now* [x](javascript:y) $a$ ."
TEXTS = ["The cat sat on the mat , and it purred .", HOSTILE, "It rained ; the cat stayed in ."]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def run(*argv: str | Path) -> int:
    return main([*map(str, argv), "--no-progress"])


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_heads_files_exist_agree_and_repeat(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", out) == 0
    files = files_of(first)
    assert set(files) == {"report.json", "report.md", "figures/layers.png", "figures/roles.png", "figures/map.png",
                          "index.html"}  # fmt: skip
    assert all(files[name].startswith(PNG) for name in files if name.endswith(".png"))
    assert files == files_of(second)  # the same corpus and model give the same bytes

    report = json.loads(files["report.json"])
    md = files["report.md"].decode("utf-8")
    for claim in report["claims"]:
        verdict = {True: "holds", False: "does not hold", None: "not applicable"}[claim["holds"]]
        assert f"| {verdict} |" in md
    for layer, row in enumerate(report["layers"]):  # the per-layer table shows report.json's numbers, in %
        cells = " | ".join(f"{100 * row[k]:.1f}" for k in ("cls", "sep", "punct", "other"))
        assert f"| {layer} | {cells} |" in md
    for row in report["heads"]:
        for head in row:
            assert f"| {head['role']} |" in md
    assert "## Clusters" in md
    assert "| cluster | heads | roles | members |" in md


def test_corpus_text_is_escaped_in_report_md(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    # one text only, so every role's example sentence is the hostile one
    corpus.write_text(HOSTILE + "\n", encoding="utf-8")
    assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", out) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "<img" not in md
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page  # the atlas view carries the corpus text as escaped data, never as markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\[x\\](javascript:y)" in md
    assert "\\*now\\*" in md
    assert "at \\| night" in md


def test_model_name_with_markup_and_dollars(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from attnscope.heads.report import heads_files

    out = tmp_path / "atlas"
    assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", out, "--js-sentences", "0") == 0
    assert not (out / "figures" / "map.png").exists()  # heads not compared: no map
    assert "Heads were not compared" in (out / "report.md").read_text(encoding="utf-8")
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    report["model"] = "$\\frac{<b>$ model_{x}"  # mathtext in a figure title, markup in Markdown: both shown as text
    files = heads_files(report)
    assert files["figures/layers.png"][:8] == PNG  # type: ignore[index]
    assert "# Head atlas: $\\\\frac{&lt;b&gt;$ model\\_{x}" in str(files["report.md"])


def test_find_files(corpus: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    argv = ["find", "--corpus", corpus, "--from", "it", "--to", "cat", "--model", tiny_model_dir, "--bootstrap", "50"]
    assert run(*argv, "--out", out) == 0
    files = files_of(out)
    assert set(files) == {"report.json", "report.md", "figures/scores.png"}
    assert files["figures/scores.png"].startswith(PNG)
    report = json.loads(files["report.json"])
    md = files["report.md"].decode("utf-8")
    best = report["ranking"][0]
    ci = f"\\[{best['ci'][0]:.3f}, {best['ci'][1]:.3f}\\]"
    assert f"| 1 | {best['layer']}-{best['head']} | {best['score']:.3f} | {best['ratio']:.2f} | {ci} |" in md
    example = report["examples"][best["example"]]
    word = example["text"][example["from"][0] : example["from"][1]]
    assert f"| {ci} | {word} → cat: {example['text']} |" in md  # the sentence where this head attends most
    assert run(*argv, "--out", tmp_path / "again") == 0
    assert files_of(tmp_path / "again") == files

    pattern = tmp_path / "pattern"
    assert run("find", "--corpus", corpus, "--pattern", "previous", "--model", tiny_model_dir, "--out", pattern) == 0
    report = json.loads((pattern / "report.json").read_text(encoding="utf-8"))
    md = (pattern / "report.md").read_text(encoding="utf-8")
    assert len(report["ranking"]) == 8
    assert all(f"| {r['layer']}-{r['head']} | {r['score']:.3f} |" in md for r in report["ranking"])
    assert (pattern / "figures" / "scores.png").read_bytes().startswith(PNG)


def test_a_failed_report_leaves_the_earlier_output(
    corpus: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnscope.heads.report as report_module

    out = tmp_path / "atlas"
    assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", out) == 0
    before = files_of(out)

    def broken(report: Any) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "role_figure", broken)
    assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", out, "--max-offset", "2") != 0
    assert files_of(out) == before  # nothing half-written: the earlier report is whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    fresh = tmp_path / "fresh"
    assert run("heads", "--corpus", corpus, "--model", tiny_model_dir, "--out", fresh, "--max-offset", "2") != 0
    assert not fresh.exists()
