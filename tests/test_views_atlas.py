"""The atlas view without a browser: its payload (grid + example head-view payloads), contract, exports, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import pytest

import attnscope
from attnscope.errors import InputError
from attnscope.views import View, atlas_view, page
from attnscope.views.atlas import ROLE_COLOURS, example_inputs, role_colours, role_order
from attnscope.views.payload import (
    PAYLOAD_VERSION,
    AtlasExample,
    AtlasHead,
    AtlasPayload,
    decode_attention,
)
from planted_models import PLANTED, build_planted
from test_views_payload import random_trace

HOSTILE = "</script><img src=x onerror=alert(1)> the cat sat"
SENTENCES = [
    "the cat sat on the mat because it was tired",
    "a black cat ran across the road , and then it hid",
    HOSTILE,
    "when the cat came home it drank some milk",
    "",  # blank: skipped by head_roles
]


@pytest.fixture(scope="module")
def planted(wordpiece: Any) -> Any:
    """The planted GPT-2 (a previous-token head <0,1>, a first-token head <1,0>)."""
    from attnscope.loading import ModelHandle

    return ModelHandle.from_model(build_planted(wordpiece), wordpiece, "planted-gpt2")


@pytest.fixture(scope="module")
def atlas(planted: Any) -> Any:
    from attnscope.heads import head_roles

    return head_roles(planted, SENTENCES)


@pytest.fixture(scope="module")
def view(atlas: Any, planted: Any) -> Any:
    return atlas_view(atlas, planted)


def test_the_grid_carries_every_heads_role_score_and_numbers(atlas: Any, view: Any) -> None:
    payload = view.payload()
    assert payload["version"] == PAYLOAD_VERSION
    assert payload["views"] == ["atlas"]
    assert payload["sides"] == {}
    assert payload["stacks"] == []
    assert payload["neuron"] == []
    section = payload["atlas"]
    report = atlas.to_json()
    assert section["model"] == "planted-gpt2"
    assert section["sentences"] == 4
    assert len(section["heads"]) == atlas.num_layers
    assert {len(r) for r in section["heads"]} == {atlas.num_heads}
    for layer, row in enumerate(section["heads"]):
        for head, cell in enumerate(row):
            want = report["heads"][layer][head]
            assert cell["role"] == want["role"]
            assert cell["score"] == want["score"]
            for key in ("first", "sep", "punct", "self", "previous", "next", "entropy", "max_weight", "distance"):
                assert cell["stats"][key] == want["stats"][key]
            assert cell["patterns"] == want["patterns"]
            assert len(cell["patterns"]) == 5
    assert section["heads"][PLANTED["previous"][0]][PLANTED["previous"][1]]["role"] == "previous"
    assert section["heads"][PLANTED["first"][0]][PLANTED["first"][1]]["role"] == "first"
    assert section["roles"] == role_order({c["role"] for row in section["heads"] for c in row})
    assert section["role_colours"] == role_colours(section["roles"])
    assert len(set(section["role_colours"])) == len(section["roles"])  # one colour per role


def test_examples_are_the_unique_sentences_as_head_view_payloads(atlas: Any, view: Any) -> None:
    section = view.payload()["atlas"]
    report = atlas.to_json()
    wanted = {h["example"]["index"] for row in report["heads"] for h in row if h["example"]}
    indices = [ex["index"] for ex in section["examples"]]
    assert sorted(indices) == sorted(wanted)
    assert len(indices) == len(set(indices))
    assert len(indices) < atlas.num_layers * atlas.num_heads
    for layer, row in enumerate(section["heads"]):
        for head, cell in enumerate(row):
            ex = section["examples"][cell["example"]]
            assert ex["index"] == report["heads"][layer][head]["example"]["index"]
            assert ex["text"] == SENTENCES[ex["index"]]
    for ex in section["examples"]:
        trace = view.traces[ex["index"]]
        inner = ex["payload"]
        assert inner["views"] == ["head"]
        assert inner["version"] == PAYLOAD_VERSION
        assert inner["sides"]["source"]["labels"] == list(trace.tokens.labels)
        shown = decode_attention(inner["stacks"][0]["attention"])
        assert np.abs(shown - trace.attention[inner["stacks"][0]["name"]]).max() <= 0.5 / 255 + 1e-6


def test_contract_types_match_what_the_atlas_payload_holds(view: Any) -> None:
    section = view.payload()["atlas"]
    assert set(section) == set(get_type_hints(AtlasPayload))
    assert set(section["heads"][0][0]) == set(get_type_hints(AtlasHead))
    assert set(section["examples"][0]) == set(get_type_hints(AtlasExample))


def test_report_json_gives_the_same_page_as_the_result(atlas: Any, view: Any) -> None:
    loaded = json.loads(json.dumps(atlas.to_json()))  # what a reader of report.json has
    again = atlas_view(loaded, traces=view.traces)
    assert again.payload_json() == view.payload_json()
    assert example_inputs(loaded) == {i: (SENTENCES[i], None) for i in view.traces}


def test_hostile_corpus_text_cannot_end_the_data_block(view: Any) -> None:
    html = view.to_html()
    assert HOSTILE in view.payload_json().replace("\\u003c", "<").replace("\\u003e", ">")
    assert "<img" not in html.split("<script data-attnscope-bundle")[0]
    assert html.count("</script>") == 2  # the data block's and the bundle's own
    assert "default-src 'none'" in html
    assert "<title>attnscope head atlas: planted-gpt2</title>" in html


def test_without_a_model_the_grid_has_no_examples(atlas: Any) -> None:
    bare = atlas_view(atlas, theme="light", index_base=1)
    payload = bare.payload()
    assert payload["atlas"]["examples"] == []
    assert {c["example"] for row in payload["atlas"]["heads"] for c in row} == {-1}
    assert payload["resolved"]["theme"] == "light"
    assert payload["resolved"]["index_base"] == 1
    assert payload["model"]["num_layers"] == atlas.num_layers
    assert payload["model"]["num_heads"] == atlas.num_heads


def test_static_png_and_repeatable_svg(view: Any, atlas: Any, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="static export needs the 'views' extra")
    from attnscope.views.export import to_svg

    png = view.save(tmp_path / "atlas.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = view.save(tmp_path / "atlas.svg").read_text(encoding="utf-8")
    assert svg == to_svg(view) == to_svg(atlas_view(atlas, traces=view.traces))  # repeatable byte for byte
    for role in view.payload()["atlas"]["roles"]:
        assert f">{role}<" in svg  # the legend names every role
    assert ROLE_COLOURS["previous"] in svg.lower()
    assert ROLE_COLOURS["first"] in svg.lower()
    for row in view.payload()["atlas"]["heads"]:
        for cell in row:  # every head's score is printed in its cell
            assert f">{cell['score']:.2f}<".replace(">0.", ">.") in svg
    light = to_svg(atlas_view(atlas, theme="light"))
    assert light != svg
    assert "#ffffff" in light.lower()


def test_index_base_numbers_the_axes(atlas: Any) -> None:
    pytest.importorskip("matplotlib", reason="static export needs the 'views' extra")
    from attnscope.views.export import to_svg

    zero, one = to_svg(atlas_view(atlas)), to_svg(atlas_view(atlas, index_base=1))
    top = str(atlas.num_heads)  # only the 1-based picture has a head (and layer) numbered num_heads
    assert f">{top}<" in one
    assert f">{top}<" not in zero


def test_bad_input_is_one_clear_error(view: Any, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="HeadAtlas"):
        atlas_view({"heads": []})
    with pytest.raises(InputError, match="HeadAtlas"):
        atlas_view({"heads": [[{"role": "first"}], [{"role": "first"}, {"role": "sep"}]]})
    with pytest.raises(InputError, match="an attnscope Trace or a head-view payload"):
        atlas_view(view.subject, traces={0: "not a trace"})
    with pytest.raises(InputError, match=r"\.html, \.png or \.svg"):
        view.save(tmp_path / "atlas.txt")
    trace = random_trace(["[CLS]", "a", "[SEP]"])
    with pytest.raises(InputError, match="unknown view"):
        View("atlas", trace)
    with pytest.raises(InputError, match="unknown view"):
        page(trace, views=["atlas"])


def test_notebook_display_and_public_names(view: Any) -> None:
    bundle = view._repr_mimebundle_()
    assert 'data-attnscope-view="atlas"' in bundle["text/html"]
    assert "head atlas of planted-gpt2" in bundle["text/plain"]
    assert attnscope.atlas_view is atlas_view


def test_examples_may_arrive_as_payloads_made_where_the_model_lives(atlas: Any, view: Any, planted: Any) -> None:
    from attnscope.probe.page import example_payload  # what a corpus report's Finalize.payload(text) returns

    payloads = {i: example_payload(planted, text) for i, (text, _) in example_inputs(atlas).items()}
    from_payloads = atlas_view(atlas, traces=payloads).payload()
    assert from_payloads == json.loads(json.dumps(view.payload()))
    with pytest.raises(InputError, match="head-view payload of version"):
        atlas_view(atlas, traces={0: '{"version": 1, "views": ["head"]}'})
