"""Head statistics on hand-made attention: exact values, patterns, roles, merging, bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from attnscope.errors import InputError
from attnscope.heads import AtlasState
from attnscope.heads.roles import assign_role, book_claims
from attnscope.heads.rows import is_punctuation, key_kinds, resolve_stack
from attnscope.heads.stats import PATTERNS, HeadStats
from attnscope.tokens import Tokens
from attnscope.traces import ModelInfo, Trace

TOKENS = ["[CLS]", "the", "cat", ",", "sat", "[SEP]"]


def previous_and_uniform(n: int = 6) -> np.ndarray:
    """[1 layer, 2 heads, n, n]: head 0 attends to the previous token (row 0 to itself), head 1 uniformly."""
    att = np.zeros((1, 2, n, n), dtype=np.float32)
    att[0, 0, 0, 0] = 1.0
    att[0, 0, np.arange(1, n), np.arange(n - 1)] = 1.0
    att[0, 1] = 1.0 / n
    return att


def encoder_trace(att: np.ndarray, tokens: list[str] = TOKENS) -> Trace:
    return Trace.from_attentions([att[layer][None] for layer in range(att.shape[0])], tokens, model_name="hand")


def decoder_trace(att: np.ndarray, tokens: list[str]) -> Trace:
    info = ModelInfo(name="hand-dec", num_layers=att.shape[0], num_heads=att.shape[1], is_causal=True)
    return Trace(model=info, tokens=Tokens.from_strings(tokens), attention={"decoder": att})


def test_rows_and_key_kinds() -> None:
    kinds = key_kinds(encoder_trace(previous_and_uniform()), "encoder")
    assert kinds.rows.tolist() == [False, True, True, True, True, False]
    assert kinds.first.tolist() == [True, False, False, False, False, False]
    assert kinds.sep.tolist() == [False, False, False, False, False, True]
    assert kinds.punct.tolist() == [False, False, False, True, False, False]
    dec = key_kinds(decoder_trace(np.zeros((1, 1, 3, 3), np.float32), ["a", "b", "."]), "decoder")
    assert dec.rows.tolist() == [False, True, True]  # position 0 (the sink) is no row in a decoder
    assert dec.first.tolist() == [True, False, False]
    assert is_punctuation("...")
    assert is_punctuation("«")
    assert not is_punctuation("a.")
    assert not is_punctuation("")


def test_exact_values_on_hand_made_attention() -> None:
    stats = HeadStats(1, 2, "encoder", max_offset=2)
    stats.update(encoder_trace(previous_and_uniform()))
    m = stats.means()
    assert stats.rows == 4
    assert stats.sentences == 1
    # head 0: rows 1..4 attend to tokens 0..3 ([CLS], the, cat, ",")
    expected0 = {"first": 0.25, "sep": 0.0, "punct": 0.25, "previous": 1.0, "self": 0.0, "next": 0.0,
                 "entropy": 0.0, "max_weight": 1.0, "distance": 1.0, "best_offset": -1.0,
                 "best_offset_share": 1.0}  # fmt: skip
    for key, value in expected0.items():
        assert m[key][0, 0] == pytest.approx(value, abs=1e-6), key
    # head 1: uniform over 6 keys
    expected1 = {"first": 1 / 6, "sep": 1 / 6, "punct": 1 / 6, "previous": 1 / 6, "self": 1 / 6, "next": 1 / 6,
                 "entropy": math.log(6), "entropy_norm": 1.0, "max_weight": 1 / 6, "distance": 10 / 6,
                 "other": 0.5}  # fmt: skip
    for key, value in expected1.items():
        assert m[key][0, 1] == pytest.approx(value, abs=1e-6), key
    # offset -2 does not exist for row 1, nor +2 for row 4: 3 of 4 rows have it
    assert stats.offset_shares()[0, 1].tolist() == pytest.approx([1 / 8, 1 / 6, 1 / 6, 1 / 6, 1 / 8])
    shares = stats.pattern_shares()
    assert shares[0, 0, PATTERNS.index("diagonal")] == 1.0
    assert shares[0, 1, PATTERNS.index("heterogeneous")] == 1.0  # uniform is no pattern


def test_decoder_rows_skip_the_sink() -> None:
    att = previous_and_uniform(4)
    att[0, 1] = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]  # causal uniform
    stats = HeadStats(1, 2, "decoder")
    stats.update(decoder_trace(att, ["a", "b", "c", "d"]))
    m = stats.means()
    assert stats.rows == 3
    assert m["previous"][0, 0] == pytest.approx(1.0)
    assert m["first"][0, 1] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert m["entropy_norm"][0, 1] == pytest.approx(1.0)  # log of the keys each row could see
    assert m["next"][0, 1] == 0.0


def test_vertical_and_block_patterns() -> None:
    tokens = ["[CLS]", "a", "b", "c", "d", "e", "[SEP]", "f", "g", "h", "i", "j", "[SEP]"]
    n = len(tokens)
    att = np.zeros((1, 2, n, n), dtype=np.float32)
    att[0, 0, :, 0] = 0.5  # vertical: half on [CLS], half on the first [SEP]
    att[0, 0, :, 6] = 0.5
    seg = np.array([0] * 7 + [1] * 6)
    for i in range(n):  # block: uniform over own-segment words two or more tokens away
        own = [j for j in range(n) if seg[j] == seg[i] and abs(i - j) > 1 and tokens[j][0] != "["]
        att[0, 1, i, own or [i]] = 1.0 / max(len(own), 1)
    trace = Trace.from_attentions([att], tokens, sentence_b_start=7, model_name="hand")
    stats = HeadStats(1, 2, "encoder")
    stats.update(trace)
    shares = stats.pattern_shares()
    assert shares[0, 0, PATTERNS.index("vertical")] == 1.0
    assert shares[0, 1, PATTERNS.index("block")] == 1.0


def test_roles_follow_the_documented_thresholds() -> None:
    base = {"first": 0.1, "sep": 0.1, "punct": 0.1, "self": 0.1, "previous": 0.1, "next": 0.1,
            "best_offset": 0.0, "best_offset_share": 0.1, "entropy_norm": 0.5}  # fmt: skip
    assert assign_role({**base, "previous": 0.7}).role == "previous"
    assert assign_role({**base, "previous": 0.7}).score == pytest.approx(0.7)
    assert assign_role({**base, "best_offset": 3.0, "best_offset_share": 0.6}).role == "offset+3"
    assert assign_role({**base, "entropy_norm": 0.9}).role == "broad"
    mixed = assign_role({**base, "sep": 0.4})
    assert (mixed.role, mixed.score, mixed.behaviour) == ("mixed", pytest.approx(0.4), "sep")


def test_book_claims_with_numbers() -> None:
    layers = {"cls": np.array([0.6, 0.5, 0.1, 0.1]), "sep": np.array([0.0, 0.1, 0.5, 0.4])}
    heads = {"previous": np.zeros((4, 2)), "next": np.zeros((4, 2))}
    heads["previous"][1, 1] = 0.8
    claims = book_claims(layers, heads, has_sep=True)
    assert [c["holds"] for c in claims] == [True, True, True]
    assert claims[0]["lower"] == pytest.approx(0.55)
    assert claims[1]["upper"] == pytest.approx(0.45)
    assert claims[2]["best"] == {"layer": 1, "head": 1, "kind": "previous", "score": 0.8}
    assert book_claims(layers, heads, has_sep=False)[1]["holds"] is None


def random_traces(count: int, seed: int = 0) -> list[Trace]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(4, 9))
        logits = rng.standard_normal((2, 3, n, n)) * 2
        att = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        words = [str(w) for w in rng.choice(["the", "cat", ",", "sat", ".", "dog"], n - 2)]
        out.append(encoder_trace(att.astype(np.float32), ["[CLS]", *words, "[SEP]"]))
    return out


def test_merge_equals_a_single_pass_and_pickles() -> None:
    traces = random_traces(12)
    info = ModelInfo(name="hand", num_layers=2, num_heads=3)
    whole = AtlasState.for_model(info, max_offset=3)
    for i, tr in enumerate(traces):
        whole.update(tr, i)
    parts = [AtlasState.for_model(info, max_offset=3) for _ in range(3)]
    for i, tr in enumerate(traces):
        parts[i % 3].update(tr, i)
    merged = pickle.loads(pickle.dumps(parts[2])).merge(parts[0]).merge(parts[1])
    a, b = whole.finalize().to_json(), merged.finalize().to_json()
    assert a == b
    for name, values in whole.stats.sums.items():  # exact integer sums: the same bits in any merge order
        assert np.array_equal(values, merged.stats.sums[name]), name
    assert np.array_equal(whole.distances.js_sum, merged.distances.js_sum)
    assert a["schema_version"] == 1
    assert len(a["heads"]) == 2
    assert len(a["heads"][0]) == 3
    assert set(a["heads"][0][0]["stats"]) >= {"first", "sep", "punct", "self", "previous", "next", "entropy"}
    assert set(a["layers"][0]) == {"cls", "sep", "punct", "other"}
    assert sum(a["layers"][1].values()) == pytest.approx(1.0, abs=1e-5)
    example = a["heads"][1][2]["example"]
    assert example is not None
    assert example["text"] == ""
    assert 0 <= example["index"] < 12


def test_best_example_is_the_strongest_sentence() -> None:
    weak, strong = previous_and_uniform(), previous_and_uniform()
    weak[0, 0] = 1 / 6  # head 0 uniform in the first sentence, previous-token in the second
    stats = AtlasState.for_model(ModelInfo(name="hand", num_layers=1, num_heads=2))
    stats.update(Trace.from_attentions([weak], TOKENS), 0)
    stats.update(Trace.from_attentions([strong], TOKENS), 7)
    atlas = stats.finalize()
    assert atlas.role(0, 0).role == "previous"  # (4 x 1/6 + 4 x 1) / 8 rows = 0.583
    assert atlas.role(0, 0).score == pytest.approx(7 / 12)
    example = atlas.examples[0][0]
    assert example is not None
    assert (example["index"], example["behaviour"]) == (7, "offset-1")
    assert example["score"] == pytest.approx(1.0)


def test_bad_input() -> None:
    info = ModelInfo(name="enc", num_layers=1, num_heads=2)
    with pytest.raises(InputError, match="no decoder attention"):
        resolve_stack(info, "decoder")
    with pytest.raises(InputError, match="cross-attention"):
        resolve_stack(ModelInfo(name="t5", num_layers=1, num_heads=1, is_encoder_decoder=True), "cross")
    with pytest.raises(InputError, match="empty"):
        AtlasState.for_model(info).finalize()
    with pytest.raises(InputError, match="does not fit"):
        HeadStats(2, 2, "encoder").update(encoder_trace(previous_and_uniform()))
    with pytest.raises(InputError, match="cannot merge"):
        HeadStats(1, 2, "encoder").merge(HeadStats(1, 3, "encoder"))
