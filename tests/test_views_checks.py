"""View functions check their input when called: indices, special tokens of bare token lists, titles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiny_models
from attnscope import Trace
from attnscope.errors import InputError
from attnscope.views import head_view, heatmap_view, model_view, neuron_view
from attnscope.views.api import page

TOKENS = ["[CLS]", "<b>", "bold", "</b>", "text", "[SEP]"]


def _attention(n: int = len(TOKENS), layers: int = 2, heads: int = 3) -> list[Any]:
    rng = np.random.default_rng(1)
    att = rng.random((layers, 1, heads, n, n)).astype(np.float32)
    return list(att / att.sum(-1, keepdims=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda t: head_view(t, layer=9),
        lambda t: head_view(t, heads=[5]),
        lambda t: model_view(t, include_layers=[0, 9]),
        lambda t: heatmap_view(t, layer=0, head=3),
        lambda t: page(t, layer=2),
        lambda t: neuron_view(t, layer=0, head=0),  # this trace has no queries/keys
    ],
)
def test_bad_indices_are_reported_when_the_view_is_made(make: Callable[[Trace], Any]) -> None:
    trace = Trace.from_attentions(_attention(), TOKENS)
    with pytest.raises(InputError, match=r"does not exist|needs qk data for the encoder stack: trace with qk=True"):
        make(trace)


def test_only_real_special_tokens_are_delimiters() -> None:
    trace = Trace.from_attentions(_attention(), TOKENS)
    assert trace.tokens.special.tolist() == [True, False, False, False, False, True]
    assert trace.tokens.num_words == 4  # "<b>", "bold", "</b>", "text"
    roberta = Trace.from_attentions(_attention(5), ["<s>", "<img>", "[NOTE]", "<pad>", "</s>"])
    assert roberta.tokens.special.tolist() == [True, False, False, True, True]


def test_views_from_tensors_have_a_name(tmp_path: Path) -> None:
    view = head_view(_attention(), TOKENS)
    assert view.trace.model.name == "attention (from tensors)"
    assert "<title>attnscope head view: attention (from tensors)</title>" in view.to_html()
    named = model_view(_attention(), TOKENS, model_name="bert-base-uncased")
    assert "<title>attnscope model view: bert-base-uncased</title>" in named.to_html()


def test_a_model_loaded_from_a_folder_is_titled_by_its_name(wordpiece: Any, tmp_path: Path) -> None:
    model = tiny_models.build("bert")
    model.config._name_or_path = str(tmp_path / "models" / "my-bert")
    view = neuron_view(model, wordpiece, "The cat sat.", None, 0, 0)
    assert view.trace.model.name == "my-bert"
    assert str(tmp_path) not in view.to_html()
    model.config._name_or_path = "google-bert/bert-base-uncased"
    assert neuron_view(model, wordpiece, "The cat sat.").trace.model.name == "google-bert/bert-base-uncased"


def test_one_view_page_saves_as_an_image(tmp_path: Path) -> None:
    trace = Trace.from_attentions(_attention(), TOKENS)
    out = page(trace, ["heatmap"]).save(tmp_path / "x.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InputError, match=r"a page of 2 views \(head, heatmap\) has no single image"):
        page(trace, ["head", "heatmap"]).save(tmp_path / "y.png")


def test_cli_writes_a_single_view_png(
    tmp_path: Path, wordpiece: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnscope.cli import main

    folder = tmp_path / "tiny"
    tiny_models.build("bert").save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    out = tmp_path / "x.png"
    assert main(["view", "The cat sat.", "--views", "head", "--model", str(folder), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "image written to" in capsys.readouterr().out
    monkeypatch.setattr("attnscope.loading.load", lambda *a, **k: pytest.fail("the model should not load"))
    assert main(["view", "The cat sat.", "--model", str(folder), "-o", str(tmp_path / "y.svg")]) == 2
    assert "image shows one view; choose it with --views" in capsys.readouterr().err
    assert main(["view", "The cat sat.", "--model", str(folder), "-o", str(tmp_path / "y.pdf")]) == 2
    assert "write a .html page, or a .png / .svg image" in capsys.readouterr().err


def test_a_trace_without_attention_is_a_clear_error() -> None:
    trace = Trace.from_attentions(_attention(), TOKENS)
    empty = Trace(model=trace.model, tokens=trace.tokens, attention={})
    with pytest.raises(InputError, match="holds no attention"):
        page(empty)
