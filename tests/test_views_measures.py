"""Measures in the views (Python side): payload and contract, static export titles, the CLI's --measure, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
import attnscope.contrib
from attnscope.cli import main
from attnscope.errors import AttnscopeError, InputError
from attnscope.views import contribution_view, head_view, heatmap_view, model_view
from attnscope.views import page as view_page
from attnscope.views.measures import ROW_MAX
from attnscope.views.payload import PAYLOAD_VERSION, decode_array, decode_attention
from test_views_cli import payload_of, tiny_folder  # noqa: F401 - the tiny_folder fixture

TEXT = "the cat sat on the mat"


@pytest.fixture
def bert_trace(tiny: Any) -> attnscope.Trace:
    return attnscope.trace(tiny("bert"), TEXT, values=True)


def test_payload_carries_the_measure_scaled_as_stated(bert_trace: attnscope.Trace) -> None:
    payload = view_page(bert_trace, ["head", "heatmap"], measure="norms").payload()
    assert payload["version"] == PAYLOAD_VERSION == 6
    assert payload["resolved"]["measure"] == "norms"
    assert payload["resolved"]["measure_scale"] == ROW_MAX
    (measure,) = payload["stacks"][0]["measures"]
    assert (measure["name"], measure["per_head"], measure["scale"]) == ("norms", True, ROW_MAX)
    raw = bert_trace.contributions["norms.encoder"].array
    expected = raw / raw.max(axis=-1, keepdims=True)
    np.testing.assert_allclose(decode_attention(measure["data"]), expected, atol=0.5 / 255 + 1e-6)
    # raw attention travels unchanged beside it
    np.testing.assert_allclose(
        decode_attention(payload["stacks"][0]["attention"]), bert_trace.attention["encoder"], atol=0.5 / 255 + 1e-6
    )


def test_headless_measure_is_one_all_heads_pseudo_head(bert_trace: attnscope.Trace) -> None:
    payload = view_page(bert_trace, ["model"], measure="rollout", precision="float32").payload()
    (measure,) = payload["stacks"][0]["measures"]
    assert measure["per_head"] is False
    assert measure["scale"] == ""
    assert measure["data"]["shape"] == [2, 1, 8, 8]
    assert payload["resolved"]["heads"] == [0]
    assert payload["resolved"]["include_heads"] == [0]
    np.testing.assert_array_equal(
        decode_attention(measure["data"])[:, 0], bert_trace.contributions["rollout.encoder"].array
    )
    # flow is one layer: the layer it reaches
    payload = view_page(bert_trace, measure="flow").payload()
    flow = next(m for m in payload["stacks"][0]["measures"] if m["name"] == "flow")
    assert flow["layers"] == [1]
    assert flow["data"]["shape"] == [1, 1, 8, 8]


def test_plain_page_carries_no_measure_but_the_contribution_views_rollout(bert_trace: attnscope.Trace) -> None:
    payload = view_page(bert_trace, ["head", "model"]).payload()
    assert payload["resolved"]["measure"] == "attention"
    assert "measures" not in payload["stacks"][0]
    assert "contribution" not in payload
    # the default tabs include the contribution view, whose rollout the selector then offers too
    payload = view_page(bert_trace).payload()
    assert payload["contribution"]["measure"] == "rollout"
    assert [m["name"] for m in payload["stacks"][0]["measures"]] == ["rollout"]


@pytest.mark.parametrize("kind", ["head", "model", "heatmap"])
def test_static_export_names_the_measure(bert_trace: attnscope.Trace, kind: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    make = {"head": head_view, "model": model_view, "heatmap": heatmap_view}[kind]
    path = make(bert_trace, measure="norms").save(tmp_path / f"{kind}.svg")
    svg = path.read_text(encoding="utf-8")
    assert "norms: norm" in svg
    assert "each row ÷ its maximum" in svg
    png = make(bert_trace, measure="rollout").save(tmp_path / f"{kind}.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_measures_give_one_clear_error(bert_trace: attnscope.Trace, tiny: Any) -> None:
    with pytest.raises(InputError, match="unknown measure 'nope'; choose from attention, rollout"):
        view_page(bert_trace, measure="nope")
    with pytest.raises(InputError, match="reruns the model"):
        head_view(bert_trace, measure="value_zeroing")
    no_values = attnscope.trace(tiny("bert"), TEXT)
    with pytest.raises(AttnscopeError, match="values=True"):
        head_view(no_values, measure="norms")
    gpt2 = attnscope.trace(tiny("gpt2"), TEXT, values=True)
    with pytest.raises(AttnscopeError) as err:  # a pre-LN family: the 2021 mixing measure is undefined
        model_view(gpt2, measure="mixing")
    assert "\n" not in str(err.value)


def test_cli_measure_writes_a_page(tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    out = tmp_path / "rollout.html"
    assert main(["view", TEXT, "--model", str(tiny_folder), "--measure", "rollout", "-o", str(out)]) == 0
    assert "(showing rollout)" in capsys.readouterr().out
    payload = payload_of(out.read_text(encoding="utf-8"))
    assert payload["resolved"]["measure"] == "rollout"
    assert [m["name"] for m in payload["stacks"][0]["measures"]] == ["rollout"]
    assert payload["contribution"]["measure"] == "rollout"
    out = tmp_path / "norms.html"  # a measure that needs values: the CLI captures them
    assert main(["view", TEXT, "--model", str(tiny_folder), "--measure", "norms", "-o", str(out)]) == 0
    assert payload_of(out.read_text(encoding="utf-8"))["resolved"]["measure_scale"] == ROW_MAX


def test_cli_unknown_measure_is_one_line(tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    code = main(
        ["view", TEXT, "--model", str(tiny_folder), "--measure", "mixing_ratio", "-o", str(tmp_path / "x.html")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown measure 'mixing_ratio'" in err[0]
    assert not (tmp_path / "x.html").exists()


def test_contribution_section_and_static_export(bert_trace: attnscope.Trace, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    view = contribution_view(bert_trace, measure="norms_summed", position=2)
    section = view.payload()["contribution"]
    assert (section["measure"], section["scale"], section["position"]) == ("norms_summed", ROW_MAX, 2)
    raw = bert_trace.contributions["norms_summed.encoder"].array
    np.testing.assert_allclose(decode_array(section["values"]), raw / raw.max(axis=-1, keepdims=True), rtol=1e-6)
    assert len(section["colours"]) == len(set(section["colours"])) == len(bert_trace.tokens)
    svg = view.save(tmp_path / "c.svg").read_text(encoding="utf-8")
    assert "norms_summed: norm summed over heads (each row ÷ its maximum)" in svg
    assert "contribution to position 2" in svg
    assert contribution_view(bert_trace).save(tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_contribution_view_errors(bert_trace: attnscope.Trace, tiny: Any) -> None:
    with pytest.raises(InputError, match="per head \\(use norms_summed or rollout\\)"):
        contribution_view(bert_trace, measure="norms")
    with pytest.raises(InputError, match="query token 99 does not exist"):
        contribution_view(bert_trace, position=99)
    t5 = attnscope.trace(tiny("t5"), TEXT, target="a b")
    with pytest.raises(InputError, match="self-attention stack"):
        contribution_view(t5, stack="cross")
