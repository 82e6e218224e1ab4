"""The attention-only probing classifier of Clark et al. (2019, §5), its baselines, and ``probe train``.

For each word j the probe scores every other word i as j's syntactic head with a weighted sum over all
heads k (every layer x head) of word-level attention in both directions, and takes a softmax over i::

    score(j -> i)    = sum_k  w_k * A_k[j, i]  +  u_k * A_k[i, j]
    score(j -> ROOT) = sum_k  r_k * S_k[j]  +  b

where ``A_k[j, i]`` is the attention of word j to word i (Clark et al.'s word-level conversion, see
:mod:`attnscope.probe.words`) and ``S_k[j]`` is the share of word j's attention that goes to special
tokens ([CLS], [SEP], ...). Clark et al. score ROOT from the attention to [CLS] and to [SEP]; word
attention keeps only their sum, so ROOT gets one learned weight per head on that sum plus a bias. A word
is never its own head (the candidate i = j is masked out). Training minimises the cross-entropy of the
gold head (every word, punctuation included) with Adam on mini-batches of sentences; the weights start at
zero and ``seed`` fixes the batch order, so one seed gives one result.

UAS = share of scored words whose predicted head is the gold head (the root's head is ROOT). As in Clark
et al.'s evaluation, words attached by ``punct`` are left out of UAS; ``uas_with_punct`` counts them too.

Baselines, scored the same way: *right-branching* (each word's head is the next word; the last word is
the root) and a *distance-only* probe trained like the attention probe on position features alone
(after Clark et al.'s distance features: the candidate is 1, 2 or 3 words to the right or left (6
indicators), its distance to the right and to the left divided by the sentence length; ROOT gets a bias).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.probe.data import Sentence
from attnscope.probe.words import token_to_word, word_attention

if TYPE_CHECKING:
    import torch

    from attnscope.loading import ModelHandle
    from attnscope.traces import Trace

PUNCT = "punct"
DISTANCE_FEATURES = ("left_3", "left_2", "left_1", "right_1", "right_2", "right_3", "right_dist", "left_dist")
KINDS = ("attention", "distance")
EPOCHS, LEARNING_RATE, BATCH_SENTENCES = 10, 0.2, 32  # converged on EWT (dev UAS flat beyond this)
MAX_LEARNING_RATE = 100.0  # Adam steps are about lr in size: beyond this the probe only overflows


@dataclass(frozen=True, eq=False)
class ProbeSentence:
    """One sentence as the probe sees it: word attention of every head, and the gold tree.

    ``attention`` [W, W, K] (K = layers x heads, layer-major; heads last for fast scoring):
    ``attention[j, i, k]`` is head k's attention from word j to word i; ``special`` [W, K]: share of word
    j's attention on special tokens; ``heads`` [W]: gold head of each word (-1 = root); ``scored`` [W]:
    counted in UAS (not attached by punct).
    """

    attention: NDArray[np.float16]
    special: NDArray[np.float16]
    heads: NDArray[np.int64]
    scored: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.heads.shape[0])


def sentence_features(trace: Trace, sentence: Sentence, stack: str | None = None) -> ProbeSentence | None:
    """Word-level probe features of one traced sentence; None if a word has no token (e.g. truncated)."""
    tw = token_to_word(trace.tokens, sentence.spans)
    n = len(sentence)
    if trace.truncated or np.unique(tw[tw >= 0]).size != n:
        return None
    att = trace.attention[stack or trace.main_stack]
    words, share = word_attention(att, tw, n)
    k = words.shape[0] * words.shape[1]
    return ProbeSentence(
        attention=np.ascontiguousarray(words.reshape(k, n, n).transpose(1, 2, 0), dtype=np.float16),
        special=np.ascontiguousarray(share.reshape(k, n).T, dtype=np.float16),
        heads=np.asarray(sentence.heads, dtype=np.int64),
        scored=np.asarray([r.split(":", 1)[0] != PUNCT for r in sentence.relations], dtype=bool),
    )


def collect_features(
    handle: ModelHandle,
    sentences: Iterable[Sentence],
    *,
    batch_size: int = 16,
    progress: bool | None = None,
) -> tuple[list[ProbeSentence], int]:
    """Trace sentences in batches and keep only their word-level features; returns (features, skipped).

    Runs the feature pass (:mod:`attnscope.probe.train_analysis`) on the local engine.
    """
    from attnscope.corpus.driver import run_analysis
    from attnscope.corpus.engines import LocalEngine
    from attnscope.probe.train_analysis import FeatureAnalysis

    with LocalEngine().open(handle) as session:
        state = run_analysis(FeatureAnalysis(), sentences, session, batch_size=batch_size, progress=progress)
    return state.features(), state.skipped


# -- the probe -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ArcProbe:
    """A trained linear head-scoring probe: ``w`` (j -> i), ``u`` (i -> j, attention only), ``r`` (ROOT).

    For ``kind="attention"`` ``w``, ``u`` and ``r`` have one entry per head (layer-major) and ``r``
    a last entry for the ROOT bias; for ``kind="distance"`` ``w`` has one entry per ``DISTANCE_FEATURES``
    name, ``u`` is empty and ``r`` is the ROOT bias alone.
    """

    kind: str
    w: NDArray[np.float64]
    u: NDArray[np.float64]
    r: NDArray[np.float64]
    epochs: int
    final_loss: float

    def predict(self, sentences: Sequence[ProbeSentence], batch_size: int = 32) -> list[NDArray[np.int64]]:
        """Predicted head of every word of each sentence (-1 = ROOT), in input order."""
        import torch

        params = _params_from(self)
        out: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)] * len(sentences)
        with torch.no_grad(), _deterministic():
            for idx in _groups(sentences, batch_size):
                batch = _batch([sentences[i] for i in idx], self.kind)
                best = _logits(params, batch).argmax(dim=2).numpy() - 1  # column 0 is ROOT
                for row, i in enumerate(idx):
                    out[i] = best[row, : len(sentences[i])].astype(np.int64)
        return out


def fit_arc_probe(
    sentences: Sequence[ProbeSentence],
    kind: str = "attention",
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    lr: float = LEARNING_RATE,
    batch_size: int = BATCH_SENTENCES,
) -> ArcProbe:
    """Train the probe (``kind`` "attention" or "distance") with Adam; same data and seed, same weights."""
    import torch

    if kind not in KINDS:
        raise InputError(f"unknown probe kind {kind!r}; use one of {', '.join(KINDS)}")
    if not sentences:
        raise InputError("no training sentences: the probe needs at least one sentence with a tree")
    if epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    if not (math.isfinite(lr) and 0 < lr <= MAX_LEARNING_RATE):
        raise InputError(f"the learning rate must be a positive finite number up to {MAX_LEARNING_RATE}, got {lr}")
    with _deterministic():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        k = int(sentences[0].attention.shape[2])
        if any(int(s.attention.shape[2]) != k for s in sentences):
            raise InputError("the sentences' features come from models with different numbers of heads")
        n_pair = k if kind == "attention" else len(DISTANCE_FEATURES)
        params = {
            "w": torch.zeros(n_pair, requires_grad=True),
            "u": torch.zeros(k if kind == "attention" else 0, requires_grad=True),
            "r": torch.zeros((k + 1) if kind == "attention" else 1, requires_grad=True),
        }
        opt = torch.optim.Adam(list(params.values()), lr=lr)
        groups = _groups(sentences, batch_size)
        steps = epochs * len(groups)  # the learning rate falls linearly to 0, so the last steps settle
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
        loss_value = float("nan")
        for _ in range(epochs):
            total, words = 0.0, 0
            for g in rng.permutation(len(groups)):
                batch = _batch([sentences[i] for i in groups[g]], kind)
                logits = _logits(params, batch)
                loss = torch.nn.functional.cross_entropy(
                    logits.flatten(0, 1), batch.target.flatten(), ignore_index=-100
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                n = int((batch.target >= 0).sum())
                total += loss.item() * n
                words += n
            loss_value = total / max(words, 1)
    if not (math.isfinite(loss_value) and all(bool(torch.isfinite(p).all()) for p in params.values())):
        raise InputError(f"training diverged (loss {loss_value}) at learning rate {lr}; try a smaller one (--lr)")
    return ArcProbe(
        kind=kind,
        w=params["w"].detach().double().numpy(),
        u=params["u"].detach().double().numpy(),
        r=params["r"].detach().double().numpy(),
        epochs=epochs,
        final_loss=loss_value,
    )


@contextmanager
def _deterministic() -> Iterator[None]:
    """One CPU thread and deterministic kernels: the same sums in the same order on any machine.

    The probe's tensors are small; on a busy machine one thread is also many times faster than two.
    """
    import torch

    threads, flag = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(flag)
        torch.set_num_threads(threads)


def right_branching(n_words: int) -> NDArray[np.int64]:
    """Right-branching tree: word j's head is word j + 1; the last word is the root (-1)."""
    heads = np.arange(1, n_words + 1, dtype=np.int64)
    if n_words:
        heads[-1] = -1
    return heads


def uas(predictions: Sequence[NDArray[np.int64]], sentences: Sequence[ProbeSentence]) -> dict[str, float | int]:
    """UAS without punctuation (``uas``) and with it (``uas_with_punct``), and the word counts."""
    correct = scored = correct_all = total = 0
    for pred, s in zip(predictions, sentences, strict=True):
        hit = np.asarray(pred) == s.heads
        correct += int(hit[s.scored].sum())
        scored += int(s.scored.sum())
        correct_all += int(hit.sum())
        total += len(s)
    return {
        "uas": correct / scored if scored else 0.0,
        "uas_with_punct": correct_all / total if total else 0.0,
        "words_scored": scored,
        "words": total,
    }


# -- batches and scores --------------------------------------------------------------------------


@dataclass
class _Batch:
    pair: torch.Tensor  # [B, Wm, Wm, C] features of (dependent j, candidate i)
    root: torch.Tensor  # [B, Wm, Cr] ROOT features of dependent j
    allowed: torch.Tensor  # [B, Wm, Wm + 1] candidate allowed (column 0 = ROOT)
    target: torch.Tensor  # [B, Wm] gold column (head + 1; ROOT = 0), -100 for padding


def _groups(sentences: Sequence[ProbeSentence], batch_size: int) -> list[list[int]]:
    """Sentence indices in batches of similar length (stable sort: deterministic)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    size = max(batch_size, 1)
    return [order[b : b + size] for b in range(0, len(order), size)]


def _batch(group: Sequence[ProbeSentence], kind: str) -> _Batch:
    import torch

    b, wm = len(group), max(len(s) for s in group)
    lengths = np.array([len(s) for s in group])
    target = np.full((b, wm), -100, dtype=np.int64)
    allowed = np.zeros((b, wm, wm + 1), dtype=bool)
    for row, s in enumerate(group):
        n = len(s)
        target[row, :n] = s.heads + 1
        allowed[row, :n, : n + 1] = True
        allowed[row, np.arange(n), np.arange(n) + 1] = False  # no word is its own head
    if kind == "attention":
        k = group[0].attention.shape[2]
        pair = np.zeros((b, wm, wm, k), dtype=np.float32)
        root = np.zeros((b, wm, k + 1), dtype=np.float32)
        for row, s in enumerate(group):
            n = len(s)
            pair[row, :n, :n] = s.attention
            root[row, :n, :k] = s.special
        root[:, :, k] = 1.0
    else:
        pair = _distance_features(wm, lengths)
        root = np.ones((b, wm, 1), dtype=np.float32)
    return _Batch(torch.from_numpy(pair), torch.from_numpy(root), torch.from_numpy(allowed), torch.from_numpy(target))


def _distance_features(wm: int, lengths: NDArray[np.int64]) -> NDArray[np.float32]:
    """[B, Wm, Wm, 8] position features of (dependent j, candidate i), in ``DISTANCE_FEATURES`` order."""
    j = np.arange(wm)[:, None]
    i = np.arange(wm)[None, :]
    offset = i - j
    ind = [(offset == d).astype(np.float32) for d in (-3, -2, -1, 1, 2, 3)]
    n = np.maximum(lengths, 1).astype(np.float32)[:, None, None]
    right = np.where(offset > 0, offset, 0)[None] / n
    left = np.where(offset < 0, -offset, 0)[None] / n
    base = np.broadcast_to(np.stack(ind)[None], (len(lengths), 6, wm, wm))
    feats = np.concatenate([base, right[:, None], left[:, None]], axis=1)
    return np.ascontiguousarray(feats.transpose(0, 2, 3, 1), dtype=np.float32)


def _logits(params: dict[str, torch.Tensor], batch: _Batch) -> torch.Tensor:
    """Scores [B, Wm, Wm + 1] of every candidate head (column 0 = ROOT, column i + 1 = word i)."""
    import torch

    if params["u"].numel():  # one pass over the features for both directions, then transpose the second
        both = batch.pair @ torch.stack([params["w"], params["u"]], dim=1)
        scores = both[..., 0] + both[..., 1].transpose(1, 2)
    else:
        scores = batch.pair @ params["w"]
    root = batch.root @ params["r"]
    logits = torch.cat([root[:, :, None], scores], dim=2)
    return logits.masked_fill(~batch.allowed, -1e9)


def _params_from(probe: ArcProbe) -> dict[str, torch.Tensor]:
    import torch

    return {name: torch.from_numpy(getattr(probe, name).astype(np.float32)) for name in ("w", "u", "r")}


# -- the whole analysis: ``attnscope probe train`` ----------------------------------------------

DEFAULT_LIMIT = 2000


@dataclass(frozen=True, eq=False)
class TrainResult:
    """The attention probe and both baselines, trained on one treebank and scored on another."""

    probe: ArcProbe
    distance: ArcProbe
    scores: dict[str, dict[str, float | int]]  # "probe", "right_branching", "distance", "probe_train"
    train_sentences: int
    train_skipped: int
    eval_sentences: int
    eval_skipped: int
    train_words: int


def probe_train(
    handle: ModelHandle,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    lr: float = LEARNING_RATE,
    batch_size: int = 16,
    progress: bool | None = None,
) -> TrainResult:
    """Trace both sets, train the attention and distance probes on ``train``, score all three on ``dev``."""
    train_feats, train_skipped = collect_features(handle, train, batch_size=batch_size, progress=progress)
    dev_feats, dev_skipped = collect_features(handle, dev, batch_size=batch_size, progress=progress)
    return train_probes(
        handle.name, train_feats, train_skipped, dev_feats, dev_skipped, epochs=epochs, seed=seed, lr=lr
    )


def train_probes(
    model_name: str,
    train_feats: Sequence[ProbeSentence],
    train_skipped: int,
    dev_feats: Sequence[ProbeSentence],
    dev_skipped: int,
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    lr: float = LEARNING_RATE,
) -> TrainResult:
    """Train the attention and distance probes on features already collected and score all three on dev."""
    if not train_feats or not dev_feats:
        which = "training" if not train_feats else "evaluation"
        raise InputError(f"no usable {which} sentence: every one was too long for {model_name} or unaligned")
    probe = fit_arc_probe(train_feats, "attention", epochs=epochs, seed=seed, lr=lr)
    distance = fit_arc_probe(train_feats, "distance", epochs=epochs, seed=seed, lr=lr)
    scores = {
        "probe": uas(probe.predict(dev_feats), dev_feats),
        "right_branching": uas([right_branching(len(s)) for s in dev_feats], dev_feats),
        "distance": uas(distance.predict(dev_feats), dev_feats),
        "probe_train": uas(probe.predict(train_feats), train_feats),
    }
    return TrainResult(
        probe=probe,
        distance=distance,
        scores=scores,
        train_sentences=len(train_feats),
        train_skipped=train_skipped,
        eval_sentences=len(dev_feats),
        eval_skipped=dev_skipped,
        train_words=sum(len(s) for s in train_feats),
    )


def head_weights(probe: ArcProbe, layers: int, heads: int) -> dict[str, NDArray[np.float64]]:
    """The attention probe's weights as [layers, heads] grids: dep_to_head (w), head_to_dep (u), root (r)."""
    if probe.kind != "attention" or probe.w.size != layers * heads:
        raise InputError(f"a {probe.kind} probe with {probe.w.size} pair weights has no {layers} x {heads} grid")
    return {
        "dep_to_head": probe.w.reshape(layers, heads),
        "head_to_dep": probe.u.reshape(layers, heads),
        "root": probe.r[:-1].reshape(layers, heads),
    }
