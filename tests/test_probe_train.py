"""The attention-only probe (probe train): synthetic answers known by construction, baselines, a real MiniLM run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.probe.data import Sentence
from attnscope.probe.train import (
    DISTANCE_FEATURES,
    ProbeSentence,
    fit_arc_probe,
    head_weights,
    right_branching,
    sentence_features,
    uas,
)

K = 6  # 2 layers x 3 heads
SIGNAL = 4  # layer 1, head 1


def random_tree(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random dependency tree: words attach, in random order, to a word already in the tree."""
    order = rng.permutation(n)
    heads = np.full(n, -1, dtype=np.int64)
    for pos in range(1, n):
        heads[order[pos]] = order[rng.integers(pos)]
    return heads


def synthetic(
    count: int, seed: int, *, signal: bool, chain: bool = False, punct_last: bool = False
) -> list[ProbeSentence]:
    """Sentences with random attention; with ``signal`` head SIGNAL points every word at its gold head."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(3, 12))
        heads = right_branching(n) if chain else random_tree(n, rng)
        rows = rng.dirichlet(np.ones(n + 1), size=(n, K))  # [W, K, W + 1]; the last column is special tokens
        if signal:
            rows[:, SIGNAL, :] = 0.0
            rows[np.arange(n), SIGNAL, np.where(heads >= 0, heads, n)] = 1.0  # the root attends to [CLS]/[SEP]
        scored = np.ones(n, dtype=bool)
        if punct_last:
            scored[-1] = False
        out.append(
            ProbeSentence(
                attention=np.ascontiguousarray(rows[:, :, :n].transpose(0, 2, 1), dtype=np.float16),
                special=rows[:, :, n].astype(np.float16),
                heads=heads,
                scored=scored,
            )
        )
    return out


def test_a_head_that_points_at_the_head_is_learned() -> None:
    train, dev = synthetic(150, 1, signal=True), synthetic(60, 2, signal=True)
    probe = fit_arc_probe(train, "attention", epochs=10, batch_size=8)
    score = uas(probe.predict(dev), dev)
    assert score["uas"] > 0.98
    grids = head_weights(probe, 2, 3)
    w = grids["dep_to_head"].ravel()
    assert int(np.argmax(w)) == SIGNAL
    assert w[SIGNAL] > 3 * np.delete(np.abs(w), SIGNAL).max()  # the signal head dominates
    assert int(np.argmax(grids["root"].ravel())) == SIGNAL  # ROOT found through its attention to special tokens


def test_random_attention_learns_no_more_than_position() -> None:
    # Chains (each word's head is the next word): position says everything, random attention nothing.
    train, dev = synthetic(150, 3, signal=False, chain=True), synthetic(60, 4, signal=False, chain=True)
    attention = uas(fit_arc_probe(train, "attention", batch_size=8).predict(dev), dev)["uas"]
    distance_probe = fit_arc_probe(train, "distance", batch_size=8)
    distance = uas(distance_probe.predict(dev), dev)["uas"]
    chance = np.mean([1.0 / len(s) for s in dev])  # W candidates per word: W - 1 other words and ROOT
    assert distance == pytest.approx(1.0)
    assert DISTANCE_FEATURES[int(np.argmax(distance_probe.w))] == "right_1"
    assert attention < chance + 0.1  # no position leaks into the attention probe (padding, self, order)
    # Random trees and random attention: neither probe has anything to learn from beyond the tree shape.
    train, dev = synthetic(150, 5, signal=False), synthetic(60, 6, signal=False)
    attention = uas(fit_arc_probe(train, "attention", batch_size=8).predict(dev), dev)["uas"]
    distance = uas(fit_arc_probe(train, "distance", batch_size=8).predict(dev), dev)["uas"]
    assert abs(attention - distance) < 0.12


def test_training_is_deterministic_given_the_seed() -> None:
    train = synthetic(80, 7, signal=True)
    a = fit_arc_probe(train, "attention", epochs=2, seed=3)
    b = fit_arc_probe(train, "attention", epochs=2, seed=3)
    c = fit_arc_probe(train, "attention", epochs=2, seed=4)
    assert np.array_equal(a.w, b.w)
    assert np.array_equal(a.u, b.u)
    assert np.array_equal(a.r, b.r)
    assert a.final_loss == b.final_loss
    assert not np.array_equal(a.w, c.w)  # the seed orders the batches


def test_right_branching_and_uas_on_a_hand_made_tree() -> None:
    # "The cat sat ." : The -> cat, cat -> sat, sat = root, . -> sat (punct)
    sentence = ProbeSentence(
        attention=np.zeros((4, 4, 1), dtype=np.float16),
        special=np.zeros((4, 1), dtype=np.float16),
        heads=np.array([1, 2, -1, 2]),
        scored=np.array([True, True, True, False]),
    )
    assert right_branching(4).tolist() == [1, 2, 3, -1]
    assert right_branching(1).tolist() == [-1]
    score = uas([right_branching(4)], [sentence])
    assert score == {"uas": 2 / 3, "uas_with_punct": 2 / 4, "words_scored": 3, "words": 4}
    assert uas([np.array([1, 2, -1, 2])], [sentence])["uas_with_punct"] == 1.0


def test_bad_arguments_are_clear_errors() -> None:
    from attnscope.errors import InputError

    with pytest.raises(InputError, match="kind"):
        fit_arc_probe(synthetic(2, 0, signal=False), "words")
    with pytest.raises(InputError, match="no training sentences"):
        fit_arc_probe([], "attention")
    with pytest.raises(InputError, match="epochs"):
        fit_arc_probe(synthetic(2, 0, signal=False), epochs=0)


@pytest.mark.integration
def test_a_word_without_tokens_makes_the_sentence_skipped(minilm: Any) -> None:
    import attnscope

    tr = attnscope.trace(minilm, "the cat")
    good = Sentence(
        words=("the", "cat"), heads=(1, -1), relations=("det", "root"), text="the cat", spans=((0, 3), (4, 7))
    )
    feats = sentence_features(tr, good)
    assert feats is not None
    assert feats.attention.shape == (2, 2, 72)
    assert feats.special.shape == (2, 72)
    row = feats.attention.astype(np.float64).sum(axis=1) + feats.special.astype(np.float64)
    assert np.allclose(row, 1.0, atol=2e-3)  # a word's attention to words plus its special share is 1
    lost = Sentence(
        words=("the", "cat", "x"),
        heads=(1, -1, 1),
        relations=("det", "root", "dep"),
        text="the cat",
        spans=((0, 3), (4, 7), (9, 10)),
    )
    assert sentence_features(tr, lost) is None


@pytest.mark.integration
def test_probe_train_cli_on_ewt(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ewt = shared_data / "ud-ewt"
    out = tmp_path / "train"
    args = [
        "probe",
        "train",
        "--treebank",
        str(ewt / "en_ewt-uds-train.conllu"),
        "--eval",
        str(ewt / "en_ewt-uds-dev.conllu"),
    ]
    code = main([*args, "--limit", "60", "--eval-limit", "30", "--epochs", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "attention probe" in printed
    assert "right-branching" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["analysis"] == "train"
    assert report["schema_version"] == 1
    assert 0.0 <= report["uas"] <= 1.0
    assert report["data"]["sentences"] + report["data"]["skipped"] == 60
    assert report["eval_data"]["sentences"] + report["eval_data"]["skipped"] == 30
    for name in ("right_branching", "distance"):
        assert 0.0 <= report["baselines"][name]["uas"] <= 1.0
    assert np.asarray(report["weights"]["dep_to_head"]).shape == (6, 12)
    assert len(report["data"]["sha256"]) == 64
    assert report["uas"] > report["baselines"]["right_branching"]["uas"]  # 60 sentences already beat it on MiniLM
    for name in (
        "report.md",
        "index.html",
        "heatmaps/dep_to_head.png",
        "heatmaps/head_to_dep.png",
        "heatmaps/root.png",
    ):
        assert (out / name).stat().st_size > 0
    assert (out / "heatmaps/dep_to_head.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "heatmaps/dep_to_head.png" in (out / "report.md").read_text()

    code = main([*args, "--limit", "0", "--out", str(tmp_path / "bad")])
    assert code == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_decoder_and_encoder_decoder_models_give_features(tiny: Any, family: str) -> None:
    from attnscope.probe.train import collect_features

    words = ("The", "cat", "sat", ".")
    spans = ((0, 3), (4, 7), (8, 11), (12, 13))
    sentence = Sentence(words, (1, 2, -1, 2), ("det", "nsubj", "root", "punct"), "The cat sat .", spans)
    handle = tiny(family)
    feats, skipped = collect_features(handle, [sentence, sentence], progress=False)
    assert skipped == 0
    k = handle.info.num_layers * handle.info.num_heads
    assert feats[0].attention.shape == (4, 4, k)
    assert feats[0].scored.tolist() == [True, True, True, False]
    pred = fit_arc_probe(feats, epochs=1).predict(feats)
    assert all(-1 <= h < 4 for p in pred for h in p.tolist())
    assert all((p != np.arange(4)).all() for p in pred)  # no word is its own head
