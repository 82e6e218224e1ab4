"""The general per-head classifier API: a head that carries the signal by construction must be found."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnscope.errors import InputError
from attnscope.probe.classify import (
    PAIR_FEATURES,
    TOKEN_FEATURES,
    fit_pair_probe,
    fit_token_probe,
    pair_features,
    token_features,
)
from attnscope.tokens import Tokens
from attnscope.traces import ModelInfo, Trace

LAYERS, HEADS = 2, 3
INFO = ModelInfo(name="synthetic", num_layers=LAYERS, num_heads=HEADS)


def make_trace(att: np.ndarray) -> Trace:
    """A trace over [CLS] w1 .. wn [SEP] with the given attention [L, H, T, T]."""
    t = att.shape[-1]
    tokens = Tokens.from_strings(["[CLS]", *[f"w{i}" for i in range(1, t - 1)], "[SEP]"])
    return Trace(model=INFO, tokens=tokens, attention={"encoder": att.astype(np.float32)})


def random_attention(t: int, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(t), size=(LAYERS, HEADS, t))


def pair_task(seed: int) -> tuple[list[Trace], list[tuple[int, int, int, bool]]]:
    """Head 1-2 sends each token to a partner; pairs (i, partner) are True, (i, another token) False."""
    rng = np.random.default_rng(seed)
    traces, pairs = [], []
    for t_index in range(30):
        t = 10
        att = random_attention(t, rng)
        partner = rng.permutation(t)
        att[1, 2] = 0.1 * att[1, 2]
        att[1, 2, np.arange(t), partner] += 0.9
        traces.append(make_trace(att))
        for i in range(1, t - 1):
            other = int(rng.choice([k for k in range(t) if k != partner[i]]))
            pairs += [(t_index, i, int(partner[i]), True), (t_index, i, other, False)]
    return traces, pairs


def test_pair_probe_finds_the_head_that_carries_the_signal() -> None:
    traces, pairs = pair_task(0)
    result = fit_pair_probe(traces, pairs, seed=0)
    assert result.per_head_accuracy.shape == (LAYERS, HEADS)
    assert result.per_head_accuracy[1, 2] > 0.95
    others = np.delete(result.per_head_accuracy.ravel(), 1 * HEADS + 2)
    assert others.max() < 0.7  # random heads sit near the 0.5 majority baseline
    assert result.majority_baseline == 0.5
    assert result.accuracy > 0.9
    assert result.top_heads(1)[0][:2] == (1, 2)
    assert result.weights.shape == (LAYERS, HEADS, len(PAIR_FEATURES))
    norms = np.abs(result.weights).sum(axis=-1)
    assert np.unravel_index(norms.argmax(), norms.shape) == (1, 2)
    assert result.weights[1, 2, 0] > 0  # more attention i -> j means more likely True (classes[1])
    assert result.classes == (False, True)
    json.dumps(result.to_dict())  # JSON-ready
    assert "head 1-2" in result.summary()


def test_probe_is_deterministic_given_the_seed() -> None:
    traces, pairs = pair_task(1)
    a = fit_pair_probe(traces, pairs, seed=3)
    b = fit_pair_probe(traces, pairs, seed=3)
    assert np.array_equal(a.per_head_accuracy, b.per_head_accuracy)
    assert np.array_equal(a.weights, b.weights)


def test_token_probe_finds_a_previous_token_head() -> None:
    rng = np.random.default_rng(2)
    traces, labels = [], []
    for t_index in range(25):
        t = 12
        att = random_attention(t, rng)
        marked = rng.random(t) < 0.5
        for i in range(1, t):
            if marked[i]:  # head 0-1 looks at the previous token for marked tokens only
                att[0, 1, i] = 0.0
                att[0, 1, i, i - 1] = 1.0
            labels.append((t_index, i, "prev" if marked[i] else "other"))
        traces.append(make_trace(att))
    result = fit_token_probe(traces, labels)
    assert result.features == TOKEN_FEATURES
    assert result.top_heads(1)[0][:2] == (0, 1)
    assert result.per_head_accuracy[0, 1] > 0.95


def test_token_features_by_hand() -> None:
    att = np.zeros((LAYERS, HEADS, 4, 4))
    att[..., :, 0] = 1.0  # every token attends to [CLS] only
    att[0, 0, 2] = [0.5, 0.5, 0.0, 0.0]  # token 2 of head 0-0: half to [CLS], half to the previous token
    tr = make_trace(att)
    f = token_features(tr, 2)
    assert f.shape == (LAYERS, HEADS, len(TOKEN_FEATURES))
    named = dict(zip(TOKEN_FEATURES, f[0, 0], strict=True))
    assert named["to_special"] == pytest.approx(0.5)
    assert named["to_prev"] == pytest.approx(0.5)
    assert named["to_self"] == 0.0
    assert named["to_next"] == 0.0
    assert named["entropy"] == pytest.approx(np.log(2), abs=1e-5)
    assert named["received"] == 0.0
    assert f[1, 0, TOKEN_FEATURES.index("to_special")] == pytest.approx(1.0)
    assert token_features(tr, 0)[1, 1, TOKEN_FEATURES.index("received")] == pytest.approx(1.0)  # all attend [CLS]
    assert pair_features(tr, 2, 1)[0, 0].tolist() == [0.5, 0.0]


def test_three_labels_give_a_weight_row_per_class() -> None:
    traces, pairs = pair_task(3)
    relabelled = [(t, i, j, "pos" if y else ("low" if i % 2 else "high")) for t, i, j, y in pairs]
    result = fit_pair_probe(traces, relabelled, folds=3)
    assert result.weights.shape == (3, LAYERS, HEADS, len(PAIR_FEATURES))
    assert result.classes == ("high", "low", "pos")
    assert result.folds == 3


def test_bad_input_is_a_clear_error() -> None:
    traces, pairs = pair_task(4)
    with pytest.raises(InputError, match="trace 99"):
        fit_pair_probe(traces, [(99, 1, 2, True), *pairs])
    with pytest.raises(InputError, match="outside"):
        fit_pair_probe(traces, [(0, 1, 50, True), *pairs])
    with pytest.raises(InputError, match="two different labels"):
        fit_pair_probe(traces, [(t, i, j, True) for t, i, j, _ in pairs])
    with pytest.raises(InputError, match="only 1 example"):
        fit_pair_probe(traces, [*pairs[:10], (0, 1, 2, "rare")])
    with pytest.raises(InputError, match="no labelled examples"):
        fit_token_probe(traces, [])
    with pytest.raises(InputError, match="decoder"):
        fit_token_probe(traces, [(0, 1, True), (0, 2, False)], stack="decoder")
