"""Planted heads: a hand-wired GPT-2 whose previous-token, first-token, induction and it->cat heads are known.

The detectors must name exactly those heads with score > 0.9; the pair finder must rank the it->cat head first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attnscope.heads import find_heads, head_roles
from planted_models import PLANTED, build_planted

SENTENCES = [
    "the cat sat on the mat because it was tired after the long day outside",
    "a black cat ran across the road , and then it hid under an old car",
    "my neighbour has a cat that sleeps all day ; it wakes up only for dinner",
    "when the cat came home it drank some milk and went straight to bed",
]


@pytest.fixture(scope="module")
def planted(wordpiece: Any) -> Any:
    from attnscope.loading import ModelHandle

    return ModelHandle.from_model(build_planted(wordpiece), wordpiece, "planted-gpt2")


def above(result: Any, threshold: float = 0.9) -> set[tuple[int, int]]:
    return {(r["layer"], r["head"]) for r in result.ranking() if r["score"] > threshold}


@pytest.mark.parametrize("pattern", ["previous", "first", "induction"])
def test_detectors_name_exactly_the_planted_head(planted: Any, pattern: str) -> None:
    result = find_heads(planted, pattern=pattern, generated=True, n_sequences=20, span=20, seed=1)
    assert above(result) == {PLANTED[pattern]}, result.ranking()[:3]
    top = result.ranking()[0]
    assert (top["layer"], top["head"]) == PLANTED[pattern]


def test_detectors_over_a_corpus(planted: Any) -> None:
    previous = find_heads(planted, SENTENCES, pattern="previous")
    assert above(previous) == {PLANTED["previous"]}  # rows 1.. of 17-token sentences: 16/17 = 0.94
    first = find_heads(planted, SENTENCES, pattern="first")
    assert above(first) == {PLANTED["first"]}
    assert first.query["inputs"] == "corpus"
    assert first.query["sequences_scored"] == len(SENTENCES)


def test_roles_of_the_planted_heads(planted: Any) -> None:
    atlas = head_roles(planted, SENTENCES)
    assert atlas.role(*PLANTED["previous"]).role == "previous"
    assert atlas.role(*PLANTED["previous"]).score > 0.99
    assert atlas.role(*PLANTED["first"]).role == "first"
    assert atlas.role(0, 0).role == "broad"  # zero weights: uniform attention
    report = atlas.to_json()
    cell = report["heads"][0][1]
    assert cell["stats"]["previous"] > 0.99
    assert cell["patterns"]["diagonal"] == 1.0
    assert cell["example"]["text"] in SENTENCES
    claims = {c["claim"]: c for c in report["claims"]}
    assert claims["previous/next-token heads exist in low layers"]["holds"] is True
    assert report["heads"][1][0]["cluster"] != report["heads"][0][1]["cluster"]


def test_from_to_finder_ranks_the_planted_head_first(planted: Any) -> None:
    result = find_heads(planted, SENTENCES, from_word="it", to_word="cat", seed=0)
    ranking = result.ranking()
    top = ranking[0]
    assert (top["layer"], top["head"]) == PLANTED["it_cat"]
    assert top["score"] > 0.9
    assert top["ratio"] > 3
    assert top["ci"][0] > ranking[1]["score"]  # the interval clears the runner-up
    assert len(result.examples) == len(SENTENCES)
    again = find_heads(planted, SENTENCES, from_word="it", to_word="cat", seed=0)
    assert again.to_json() == result.to_json()  # seeded bootstrap


def test_pairs_file_gives_the_same_answer(planted: Any) -> None:
    pairs = []
    for text in SENTENCES:
        f, t = text.index(" it ") + 1, text.index("cat")
        pairs.append({"text": text, "from": [f, f + 2], "to": [t, t + 3]})
    by_pairs = find_heads(planted, pairs=pairs, seed=0)
    by_words = find_heads(planted, SENTENCES, from_word="it", to_word="cat", seed=0)
    np.testing.assert_allclose(by_pairs.scores, by_words.scores, atol=1e-7)
    assert by_pairs.ranking()[0]["layer"] == PLANTED["it_cat"][0]
