"""Trace engine: exact attention against the model's own output, tokens, files, BertViz input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import attnscope
import tiny_models
from attnscope.errors import InputError, TraceFileError

PAIR = ("The cat is very sad.", "Because it could not find food to eat.")


def _reference(
    handle: Any, text: str, text_pair: str | None = None, target: str | None = None
) -> dict[str, np.ndarray]:
    """The attention the model returns when called directly, outside attnscope."""
    import torch

    tok = handle.tokenizer
    enc = tok(text, text_pair, return_tensors="pt")
    kwargs: dict[str, Any] = {}
    if target is not None:
        ids = tok(text_target=target)["input_ids"]
        start = handle.model.config.decoder_start_token_id
        kwargs["decoder_input_ids"] = torch.tensor([[start, *ids]])
    with torch.no_grad():
        out = handle.model(**enc, **kwargs, output_attentions=True)
    if target is not None:
        names = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    else:
        names = {"decoder" if handle.info.is_causal else "encoder": out.attentions}
    return {k: torch.stack(v)[:, 0].numpy() for k, v in names.items()}


@pytest.mark.parametrize("family", list(tiny_models.CONFIGS))
def test_attention_equals_model_output(tiny: Any, family: str) -> None:
    handle = tiny(family)
    target = "Die Katze ist traurig." if handle.info.is_encoder_decoder else None
    pair = None if handle.info.is_encoder_decoder else PAIR[1]
    result = attnscope.trace(handle, PAIR[0], pair, target=target)
    expected = _reference(handle, PAIR[0], pair, target)
    assert set(result.attention) == set(expected)
    for stack, ref in expected.items():
        np.testing.assert_array_equal(result.attention[stack], ref)
        assert result.attention[stack].dtype == np.float32
        np.testing.assert_allclose(result.attention[stack].sum(-1), 1.0, atol=1e-5)
    if handle.info.is_causal:
        att = result.attention["decoder"]
        assert np.all(np.triu(att, k=1) == 0), "a causal model attended to a later token"


def test_sentence_pair_segments_and_words(minilm: Any) -> None:
    result = attnscope.trace(minilm, *PAIR)
    toks = result.tokens
    assert toks.raw[0] == "[CLS]"
    assert toks.raw[-1] == "[SEP]"
    assert toks.sentence_b_start == toks.raw.index("[SEP]") + 1
    assert toks.special.tolist() == [t in ("[CLS]", "[SEP]") for t in toks.raw]
    assert toks.words() == [
        "The",
        "cat",
        "is",
        "very",
        "sad",
        ".",
        "Because",
        "it",
        "could",
        "not",
        "find",
        "food",
        "to",
        "eat",
        ".",
    ]
    assert result.attention["encoder"].shape == (6, 12, len(toks), len(toks))


def test_save_load_round_trip(tiny: Any, tmp_path: Any) -> None:
    result = attnscope.trace(tiny("bart"), "A source sentence.", target="A target.")
    path = result.save(tmp_path / "t.safetensors")
    loaded = attnscope.Trace.load(path)
    assert loaded.model == result.model
    assert loaded.tokens == result.tokens
    assert loaded.target_tokens == result.target_tokens
    for stack in result.attention:
        np.testing.assert_array_equal(loaded.attention[stack], result.attention[stack])


def test_malformed_trace_file(tmp_path: Any) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(TraceFileError, match="not an attnscope trace"):
        attnscope.Trace.load(bad)
    with pytest.raises(TraceFileError, match="no trace file"):
        attnscope.Trace.load(tmp_path / "missing.safetensors")


def test_from_attentions_matches_bertviz_call(minilm: Any) -> None:
    import torch

    enc = minilm.tokenizer(*PAIR, return_tensors="pt")
    with torch.no_grad():
        attention = minilm.model(**enc, output_attentions=True).attentions
    tokens = minilm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    b_start = enc["token_type_ids"][0].tolist().index(1)
    built = attnscope.Trace.from_attentions(attention, tokens, b_start)
    traced = attnscope.trace(minilm, *PAIR)
    np.testing.assert_array_equal(built.attention["encoder"], traced.attention["encoder"])
    assert built.tokens.sentence_b_start == traced.tokens.sentence_b_start
    np.testing.assert_array_equal(built.tokens.special, traced.tokens.special)
    with pytest.raises(InputError, match="tokens were given"):
        attnscope.Trace.from_attentions(attention, tokens[:-1])


def test_import_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, attnscope; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api() -> None:
    assert set(attnscope.__all__) == {
        "QK",
        "AttnscopeError",
        "ModelHandle",
        "ModelInfo",
        "Trace",
        "load",
        "trace",
        "trace_many",
        "head_view",
        "model_view",
        "neuron_view",
        "heatmap_view",
        "atlas_view",
        "compare_view",
    }
    for name in attnscope.__all__:
        assert getattr(attnscope, name) is not None
