"""head_roles / find_heads in process on tiny models: every stack, skipped texts, JSON reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from attnscope.errors import InputError
from attnscope.heads import find_heads, head_roles

TEXTS = ["The cat sat on the mat , and it purred .", "Dogs bark at night .", "It rained ; the cat stayed in ."]


@pytest.mark.parametrize(("family", "stack"), [("bert", "encoder"), ("gpt2", "decoder"), ("t5", "encoder"),
                                               ("t5", "decoder")])  # fmt: skip
def test_every_self_attention_stack(tiny: Callable[[str], Any], family: str, stack: str) -> None:
    handle = tiny(family)
    atlas = head_roles(handle, TEXTS, stack=stack)
    report = json.loads(json.dumps(atlas.to_json(), allow_nan=False))
    assert report["stack"] == stack
    assert report["sentences"] == len(TEXTS)
    assert len(report["heads"]) == handle.info.num_layers
    assert all(len(layer) == handle.info.num_heads for layer in report["heads"])
    for layer in report["heads"]:
        for cell in layer:
            for key in ("first", "sep", "punct", "self", "previous", "next"):
                assert 0.0 <= cell["stats"][key] <= 1.0 + 1e-6
    for layer in report["layers"]:
        assert sum(layer.values()) == pytest.approx(1.0, abs=1e-5)
    if stack == "decoder":
        assert all(cell["stats"]["next"] == 0.0 for layer in report["heads"] for cell in layer)  # causal
    found = find_heads(handle, TEXTS, pattern="self", stack=stack).to_json()
    assert len(found["ranking"]) == handle.info.num_layers * handle.info.num_heads
    assert [r["score"] for r in found["ranking"]] == sorted((r["score"] for r in found["ranking"]), reverse=True)
    json.dumps(found, allow_nan=False)


def test_cross_attention_is_refused(tiny: Callable[[str], Any]) -> None:
    with pytest.raises(InputError, match="cross-attention"):
        head_roles(tiny("t5"), TEXTS, stack="cross")


def test_too_long_texts_are_skipped_and_counted(tiny: Callable[[str], Any]) -> None:
    long_text = "word " * 600  # 512 positions in the tiny GPT-2
    atlas = head_roles(tiny("gpt2"), [long_text, *TEXTS, "   "])
    assert atlas.skipped == {"blank": 1, "too_long": 1}
    assert atlas.sentences == len(TEXTS)
    example_indices = {c["example"]["index"] for layer in atlas.to_json()["heads"] for c in layer if c["example"]}
    assert example_indices <= {1, 2, 3}  # corpus indices, not positions among the kept texts
    with pytest.warns(UserWarning, match="truncated to 512"):
        truncated = head_roles(tiny("gpt2"), [long_text, *TEXTS], truncation=True)
    assert truncated.skipped == {"blank": 0, "too_long": 0}
    assert truncated.sentences == len(TEXTS) + 1
    no_comparison = head_roles(tiny("gpt2"), TEXTS, js_sentences=0).to_json()
    assert no_comparison["similarity"] is None
    assert no_comparison["heads"][0][0]["cluster"] is None
    with pytest.raises(InputError, match="1 too long"):
        head_roles(tiny("gpt2"), [long_text])


def test_sentence_pairs_are_traced_as_pairs(tiny: Callable[[str], Any]) -> None:
    atlas = head_roles(tiny("bert"), TEXTS, text_pairs=["A second sentence follows here ."] * len(TEXTS))
    report = atlas.to_json()
    assert report["sentences"] == len(TEXTS)
    example = report["heads"][0][0]["example"]
    assert example["text_pair"] == "A second sentence follows here ."


def test_partial_states_hold_no_torch_objects(tiny: Callable[[str], Any]) -> None:
    import pickle

    import attnscope
    from attnscope.heads import AtlasState, PairScores, PatternScores

    handle = tiny("bert")
    traces = list(attnscope.trace_many(handle, TEXTS))
    info = handle.info
    atlas = AtlasState.for_model(info)
    pattern = PatternScores(info.num_layers, info.num_heads, "encoder", "previous")
    pairs = PairScores(info.num_layers, info.num_heads, "encoder")
    for i, tr in enumerate(traces):
        atlas.update(tr, i)
        pattern.update(tr, i)
        pairs.update(tr, [((0, 3), (4, 7))] if i == 0 else [], i)
    for state in (atlas, pattern, pairs):
        data = pickle.dumps(state)
        assert b"torch" not in data
        assert len(data) < 200_000
