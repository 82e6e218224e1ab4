"""Pattern and pair scoring on hand-made attention; the finder's bad-input errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.errors import InputError
from attnscope.heads import PatternScores, find_heads, head_roles
from attnscope.heads.find import load_pattern, mul_scores, named_pattern
from attnscope.heads.pairs import sentence_words, word_occurrences, word_pairs


def test_named_patterns() -> None:
    toks = ("a", "b", "c", "a", "b", "c")
    ind = named_pattern("induction", toks)
    assert sorted(zip(*np.nonzero(ind), strict=True)) == [(3, 1), (4, 2), (5, 3)]
    dup = named_pattern("duplicate", toks)
    assert sorted(zip(*np.nonzero(dup), strict=True)) == [(3, 0), (4, 1), (5, 2)]
    special = np.array([True, False, True, False, True])
    dup = named_pattern("duplicate", ("[CLS]", "x", "[SEP]", "x", "[SEP]"), special)
    assert sorted(zip(*np.nonzero(dup), strict=True)) == [(3, 1)]  # [SEP] is no duplicate of [SEP]
    assert named_pattern("previous", toks[:3]).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert named_pattern("first", toks[:2]).tolist() == [[1, 0], [1, 0]]
    with pytest.raises(InputError, match="unknown pattern 'sideways'"):
        named_pattern("sideways", toks)


def test_mul_score_as_transformer_lens() -> None:
    a = np.array([[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.2, 0.5, 0.3]])[None, None]
    prev = named_pattern("previous", ("x", "y", "z"))
    assert mul_scores(a, prev)[0, 0] == pytest.approx((0.6 + 0.5) / 3)
    # exclude_bos zeroes key 0's column; exclude_current_token the diagonal; then sum / sum
    assert mul_scores(a, prev, exclude_bos=True)[0, 0] == pytest.approx(0.5 / (0.4 + 0.5 + 0.3))
    assert mul_scores(a, prev, exclude_current_token=True)[0, 0] == pytest.approx(1.1 / (0.6 + 0.2 + 0.5))
    pattern = np.zeros((3, 3))
    pattern[2, 1] = 1.0
    assert mul_scores(a, pattern, targeted_rows=True)[0, 0] == pytest.approx(0.5)  # only row 2 has a target
    assert mul_scores(a, np.zeros((3, 3)), targeted_rows=True) is None


def test_pattern_files(tmp_path: Path) -> None:
    good = np.tril(np.ones((4, 4)), -1)
    np.save(tmp_path / "p.npy", good)
    np.savetxt(tmp_path / "p.csv", good, delimiter=",")
    assert np.array_equal(load_pattern(tmp_path / "p.npy"), good)
    assert np.array_equal(load_pattern(tmp_path / "p.csv"), good)
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    with pytest.raises(InputError, match="2-D"):
        load_pattern(tmp_path / "cube.npy")
    np.save(tmp_path / "neg.npy", -good)
    with pytest.raises(InputError, match="non-negative"):
        load_pattern(tmp_path / "neg.npy")
    (tmp_path / "bad.csv").write_text("1,x\n0,1\n")
    with pytest.raises(InputError, match="not a numeric matrix"):
        load_pattern(tmp_path / "bad.csv")
    (tmp_path / "p.txt").write_text("1")
    with pytest.raises(InputError, match=r"\.npy or \.csv"):
        load_pattern(tmp_path / "p.txt")
    with pytest.raises(InputError, match="not found"):
        load_pattern(tmp_path / "missing.npy")


def test_words_and_pairs() -> None:
    text = "The cat saw it. Cat-like, it purred; itself not."
    assert word_occurrences(text, "it") == [(12, 14), (26, 28)]
    assert word_occurrences(text, "CAT") == [(4, 7), (16, 19)]
    assert len(word_pairs(text, "it", "cat")) == 4
    assert word_pairs(text, "it", "dog") == []
    assert word_pairs("New York is in New York", "new york", "york") == [((0, 8), (19, 23)), ((15, 23), (4, 8))]
    assert sentence_words("New York is big", [(0, 8)]) == [(0, 8), (9, 11), (12, 15)]
    with pytest.raises(InputError, match="empty"):
        word_occurrences(text, " ")


def test_finder_bad_input(tiny: Callable[[str], Any], tmp_path: Path) -> None:
    bert, gpt2 = tiny("bert"), tiny("gpt2")
    texts = ["The cat sat .", "It slept ."]
    with pytest.raises(InputError, match="no text to analyse"):
        head_roles(bert, ["", "  "])
    with pytest.raises(InputError, match="no text to analyse"):
        find_heads(bert, [], pattern="previous")
    with pytest.raises(InputError, match="holds both 'dog' and 'cat'"):
        find_heads(bert, texts, from_word="dog", to_word="cat")
    with pytest.raises(InputError, match="has no decoder attention"):
        head_roles(bert, texts, stack="decoder")
    with pytest.raises(InputError, match="has no encoder attention"):
        find_heads(gpt2, texts, pattern="previous", stack="encoder")
    with pytest.raises(InputError, match="one question"):
        find_heads(bert, texts, pattern="previous", from_word="cat", to_word="it")
    np.save(tmp_path / "small.npy", np.eye(3))
    with pytest.raises(InputError, match="the pattern is 3x3 but a sequence needs"):
        find_heads(bert, texts, pattern=tmp_path / "small.npy")
    np.save(tmp_path / "odd.npy", np.eye(7))  # [CLS] + 2 x span + [SEP] is even
    with pytest.raises(InputError, match="must be square with a size of 2 \\+ 2 x span"):
        find_heads(bert, pattern=tmp_path / "odd.npy", generated=True)
    with pytest.raises(InputError, match="spans overlap"):
        find_heads(bert, pairs=[{"text": "a cat", "from": [2, 5], "to": [3, 4]}])
    with pytest.raises(InputError, match="'to' span"):
        find_heads(bert, pairs=[{"text": "a cat", "from": [0, 1], "to": [2, 9]}])
    with pytest.raises(InputError, match="unknown pattern"):
        PatternScores(2, 4, "encoder", "sideways")


def test_user_matrix_on_generated_inputs_equals_the_named_pattern(tiny: Callable[[str], Any]) -> None:
    bert = tiny("bert")
    named = find_heads(bert, pattern="previous", generated=True, n_sequences=4, span=6, seed=3)
    matrix = find_heads(bert, pattern=np.eye(14, k=-1), generated=True, n_sequences=4, seed=3)
    np.testing.assert_allclose(matrix.scores, named.scores, atol=1e-12)
    assert matrix.to_json()["ranking"] == named.to_json()["ranking"]
