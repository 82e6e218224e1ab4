"""``attnscope view``: one self-contained page from the command line, clear errors for bad options."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import tiny_models
from attnscope.cli import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, wordpiece: Any) -> Path:
    """A tiny BERT saved as a local model folder, as --model takes it."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_models.build("bert").save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    return folder


def payload_of(html: str) -> Any:
    return json.loads(re.search(r'<script type="application/json">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]


def test_view_writes_one_page_and_prints_its_path(
    tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "page.html"
    args = ["view", "The cat is very sad.", "Because it could not find food.", "--model", str(tiny_folder)]
    code = main([*args, "-o", str(out), "--views", "head,neuron", "--layers", "1", "--heads", "2,3"])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith(f"page written to {out.resolve()} (")
    assert "views:   head, neuron" in printed
    payload = payload_of(out.read_text(encoding="utf-8"))
    assert payload["views"] == ["head", "neuron"]
    opts = payload["resolved"]
    assert (opts["layer"], opts["heads"], opts["include_layers"], opts["theme"]) == (1, [2, 3], [1], "dark")
    assert payload["precision"] == "uint8"
    assert payload["neuron"][0]["stack"] == "encoder"


def test_view_options_theme_base_precision(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "light.html"
    args = ["view", "A cat.", "--model", str(tiny_folder), "-o", str(out), "--views", "model,heatmap"]
    assert main([*args, "--theme", "light", "--index-base", "1", "--precision", "float32"]) == 0
    payload = payload_of(out.read_text(encoding="utf-8"))
    assert (payload["resolved"]["theme"], payload["resolved"]["index_base"], payload["precision"]) == (
        "light",
        1,
        "float32",
    )
    assert payload["neuron"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--views", "head,graph"], "unknown view"),
        (["--layers", "x"], "comma-separated numbers"),
        (["--layers", "7"], "layer 7 does not exist"),
    ],
)
def test_view_bad_options(
    tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["view", "A cat.", "--model", str(tiny_folder), "-o", str(tmp_path / "x.html"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("attnscope: error: ")
    assert message in err
