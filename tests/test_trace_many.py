"""trace_many: batched traces equal unbatched ones, in input order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.errors import InputError

TEXTS = [
    "Short.",
    "A considerably longer sentence, with a clause or two, that needs padding in a batch.",
    "Medium length text here.",
    "x",
    "Another sentence of moderate size for the batch.",
]


def _assert_same(batched: attnscope.Trace, single: attnscope.Trace) -> None:
    assert batched.tokens == single.tokens
    assert batched.target_tokens == single.target_tokens
    assert set(batched.attention) == set(single.attention)
    for stack, att in single.attention.items():
        np.testing.assert_allclose(batched.attention[stack], att, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["bert", "distilbert", "gpt2", "llama", "qwen2"])
def test_batched_equals_unbatched(tiny: Any, family: str) -> None:
    handle = tiny(family)
    results = list(attnscope.trace_many(handle, TEXTS, batch_size=2))
    assert len(results) == len(TEXTS)
    for text, batched in zip(TEXTS, results, strict=True):
        _assert_same(batched, attnscope.trace(handle, text))


def test_pairs_and_real_model(minilm: Any) -> None:
    pairs = [t[::-1] for t in TEXTS]
    results = list(attnscope.trace_many(minilm, TEXTS, text_pairs=pairs, batch_size=3))
    for text, pair, batched in zip(TEXTS, pairs, results, strict=True):
        _assert_same(batched, attnscope.trace(minilm, text, pair))


def test_encoder_decoder_targets(tiny: Any) -> None:
    handle = tiny("bart")
    targets = [f"target number {i} " * (i + 1) for i in range(len(TEXTS))]
    results = list(attnscope.trace_many(handle, TEXTS, targets=targets, batch_size=4))
    for text, target, batched in zip(TEXTS, targets, results, strict=True):
        _assert_same(batched, attnscope.trace(handle, text, target=target))


def test_bad_arguments(minilm: Any) -> None:
    with pytest.raises(InputError, match="batch_size"):
        list(attnscope.trace_many(minilm, TEXTS, batch_size=0))
    with pytest.raises(InputError, match="same length"):
        list(attnscope.trace_many(minilm, TEXTS, text_pairs=["a"]))
    with pytest.raises(InputError, match="empty"):
        list(attnscope.trace_many(minilm, ["fine", ""]))
