"""probe coref: mention scoring on hand-made attention, baselines, and the real CLI on WSC items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.errors import DataFileError
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


DET_TEXT = "The trophy did not fit in the suitcase because it was big ."


def _det_item(with_determiner: bool) -> CorefItem:
    """'trophy' (the antecedent) against 'suitcase' or 'the suitcase': only the span changes, not the text."""
    start = DET_TEXT.index("the suitcase") if with_determiner else DET_TEXT.index("suitcase")
    return CorefItem(
        id="d",
        text=DET_TEXT,
        pronoun=(DET_TEXT.index(" it ") + 1, DET_TEXT.index(" it ") + 3),
        candidates=((4, 10), (start, DET_TEXT.index("suitcase") + 8)),
        answer=0,
    )


def test_a_determiner_in_one_span_does_not_decide_the_head_word_score() -> None:
    tokens = _word_tokens(DET_TEXT)
    n = len(tokens)
    it = 1 + DET_TEXT.split(" ").index("it")
    att = np.zeros((1, 2, n, n), dtype=np.float32)
    # head 0 ignores determiners: 0.3 to "trophy", 0.2 to "suitcase", nothing to "the";
    # head 1 also puts 0.5 on the determiner "the" (before suitcase): it decides under "max".
    for h, to_the in ((0, 0.0), (1, 0.5)):
        att[0, h, it, 2] = 0.3  # trophy
        att[0, h, it, 8] = 0.2  # suitcase
        att[0, h, it, 7] = to_the  # the
        att[0, h, it, 0] = 1.0 - att[0, h, it].sum()
    for head in (0, 1):
        chosen = set()
        for with_det in (False, True):
            scores = item_scores(att, tokens, _det_item(with_det))  # default: the head word
            assert scores is not None
            chosen.add(int(np.argmax(scores[:, 0, head])))
        assert chosen == {0}, f"head {head}: the determiner changed the chosen candidate"
    max_scores = item_scores(att, tokens, _det_item(True), "max")
    assert max_scores is not None
    assert int(np.argmax(max_scores[:, 0, 1])) == 1  # under max, "the" wins it for "the suitcase"


def test_the_data_can_name_a_mention_head(tmp_path: Path) -> None:
    text = "The dog of the neighbour barked at Tom because it was angry ."
    row = {
        "text": text,
        "pronoun": {"start": text.index(" it ") + 1, "end": text.index(" it ") + 3},
        "antecedent": {"start": 0, "end": 24, "head": {"start": 4, "end": 7}},  # "The dog of the neighbour" -> dog
        "distractor": {"start": text.index("Tom"), "end": text.index("Tom") + 3},
    }
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (item,) = read_coref(path)
    assert item.heads == ((4, 7), None)
    tokens = _word_tokens(text)
    n = len(tokens)
    att = np.zeros((1, 1, n, n), dtype=np.float32)
    it = 1 + text.split(" ").index("it")
    att[0, 0, it, 2] = 0.4  # dog
    att[0, 0, it, 5] = 0.1  # neighbour (the last word)
    att[0, 0, it, 8] = 0.2  # Tom
    scores = item_scores(att, tokens, item)
    assert scores is not None
    np.testing.assert_allclose(scores[:, 0, 0], [0.4, 0.2])
    bad = dict(row, antecedent={"start": 0, "end": 7, "head": {"start": 8, "end": 10}})
    path.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"head .* is not inside the mention"):
        list(read_coref(path))
