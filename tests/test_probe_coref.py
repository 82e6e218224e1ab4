"""probe coref: mention scoring on hand-made attention, baselines, and the real CLI on WSC items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.probe.coref import CorefResult, item_scores, mention_words, nearest_candidate
from attnscope.probe.data import CorefItem, read_coref
from attnscope.tokens import Tokens

TEXT = "The big dog chased Tom because it was hungry ."
ITEM = CorefItem(id="x", text=TEXT, pronoun=(31, 33), candidates=((0, 11), (19, 22)), answer=0)


def _word_tokens(text: str) -> Tokens:
    """[CLS] + one token per whitespace word + [SEP], with character offsets."""
    spans, pos = [], 0
    for w in text.split(" "):
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    offsets = [(-1, -1), *spans, (-1, -1)]
    n = len(offsets)
    return Tokens(
        raw=tuple(f"t{i}" for i in range(n)),
        display=tuple(f"t{i}" for i in range(n)),
        special=np.array([True] + [False] * (n - 2) + [True]),
        segment=np.zeros(n, dtype=np.int8),
        word_ids=np.arange(-1, n - 1, dtype=np.int32),
        offsets=np.array(offsets, dtype=np.int32),
        texts=(text,),
    )


def test_mention_words_and_nearest() -> None:
    spans, groups = mention_words(ITEM)
    assert [TEXT[a:b] for a, b in spans] == ["it", "The", "big", "dog", "Tom"]
    assert [g.tolist() for g in groups] == [[1, 2, 3], [4]]
    assert nearest_candidate(ITEM) == 1  # "Tom" is closer to "it"


def test_max_and_sum_mention_scores() -> None:
    tokens = _word_tokens(TEXT)
    n = len(tokens)
    att = np.zeros((1, 2, n, n), dtype=np.float32)
    it = 7  # token index of "it" ([CLS] first)
    # head 0: 0.2 to each of The/big/dog (max 0.2, sum 0.6), 0.3 to Tom; head 1: all to "dog"
    att[0, 0, it, [1, 2, 3]] = 0.2
    att[0, 0, it, 5] = 0.3
    att[0, 0, it, 0] = 0.1
    att[0, 1, it, 3] = 1.0
    scores_max = item_scores(att, tokens, ITEM, "max")
    scores_sum = item_scores(att, tokens, ITEM, "sum")
    assert scores_max is not None
    assert scores_sum is not None
    np.testing.assert_allclose(scores_max[:, 0, 0], [0.2, 0.3])
    np.testing.assert_allclose(scores_sum[:, 0, 0], [0.6, 0.3])
    np.testing.assert_allclose(scores_max[:, 0, 1], [1.0, 0.0])


def test_result_accuracy_baselines_and_held_out() -> None:
    correct = np.zeros((4, 1, 2), dtype=bool)
    correct[:, 0, 1] = [True, True, True, False]
    correct[:2, 0, 0] = True
    result = CorefResult(
        correct=correct,
        nearest=np.array([True, False, False, False]),
        first=np.array([True, True, False, False]),
        candidates=np.array([2, 2, 4, 4]),
        mention_score="max",
    )
    assert result.best_head == (0, 1)
    np.testing.assert_allclose(result.accuracy, [[0.5, 0.75]])
    assert result.baselines() == {"nearest": 0.25, "first": 0.5, "chance": pytest.approx(0.375)}
    # first half picks head 0 (ties: first) -> 0.0 on the second half; second half picks head 1 -> 1.0 on the first
    assert result.held_out_accuracy() == pytest.approx(0.5)


@pytest.mark.integration
def test_cli_on_wsc_items(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_data / "coref" / "wsc273.jsonl"
    out = tmp_path / "coref"
    assert main(["probe", "coref", "--data", str(data), "--limit", "20", "--out", str(out), "--device", "cpu"]) == 0
    assert "baseline: nearest" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["analysis"] == "coref"
    assert report["data"]["items"] == 20
    assert report["data"]["skipped_items"] == []
    layer, head = report["best_head"]
    assert report["accuracy"] == max(max(row) for row in report["per_head"])
    assert report["per_head"][layer][head] == report["accuracy"]
    items = list(read_coref(data, limit=20))
    assert report["baselines"]["first"] == pytest.approx(sum(i.answer == 0 for i in items) / 20)
    assert report["baselines"]["chance"] == pytest.approx(0.5)
    assert 0.0 <= report["held_out_accuracy"] <= 1.0
    assert (out / "heatmaps" / "coref.png").read_bytes().startswith(b"\x89PNG")
    assert "Mention score" in (out / "report.md").read_text()


def test_items_with_overlapping_candidates_are_skipped(tiny: Any) -> None:
    from attnscope.errors import InputError
    from attnscope.probe.coref import probe_coref

    overlapping = CorefItem(id="o", text=TEXT, pronoun=(31, 33), candidates=((0, 11), (8, 11)), answer=0)
    result = probe_coref(tiny("bert"), [ITEM, overlapping], progress=False)
    assert result.items == 1
    assert result.skipped == (("o", "candidate mentions overlap"),)
    with pytest.raises(InputError, match="no usable coreference items"):
        probe_coref(tiny("bert"), [overlapping], progress=False)
