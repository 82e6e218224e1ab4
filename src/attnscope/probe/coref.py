"""Which heads link a pronoun to its antecedent: ``probe coref`` (after Clark et al. 2019, §4.3).

For each item and each head, the pronoun's attention to each candidate mention is scored, and the head
is right when the antecedent scores strictly higher than every other candidate. Attention is taken at
word level (:mod:`attnscope.probe.words`): from the pronoun, averaged over its pieces; to a word, summed
over its pieces. A mention's words are its whitespace-separated parts; its score is, by default, the
attention to its **head word** (``head``, as Clark et al. match head words): the word the data names as its
head, else its last word ("the big dog" -> "dog"), so a determiner or adjective in one candidate and not
the other cannot decide the result. ``max`` (its most-attended word) and ``sum`` (the sum over its words)
remain as options; with ``max``, a head that attends to "the" prefers whichever candidate has one.

Baselines: *nearest* (the candidate closest to the pronoun in characters) and *first* (the candidate
that appears first in the text); *chance* is the mean of 1 / number of candidates. Because the best of
many heads is picked on the same items, the report also gives a *held-out* accuracy: the best head
chosen on the first half of the items is scored on the second half and vice versa, averaged (contiguous
halves keep a Winograd twin pair, adjacent in the file, on one side). Items whose candidate mentions
overlap, or where a mention has no token (cut off), are skipped and listed in the report.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.corpus.protocol import payload_maker
from attnscope.errors import InputError
from attnscope.probe.data import CorefItem, Span
from attnscope.probe.page import linked_page, view_bundle
from attnscope.probe.report import (
    heatmap_image,
    markdown_table,
    report_header,
    rounded,
    text_table,
    to_json,
)
from attnscope.probe.words import token_to_word, word_attention
from attnscope.text import markdown_code, markdown_text

if TYPE_CHECKING:
    from attnscope.corpus.protocol import ModelRef
    from attnscope.loading import ModelHandle

SCORES = ("head", "max", "sum")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, eq=False)
class CorefResult:
    """Per item and head, whether the antecedent won; and the baselines per item."""

    correct: NDArray[np.bool_]  # [N, L, H]
    nearest: NDArray[np.bool_]  # [N]
    first: NDArray[np.bool_]  # [N]
    candidates: NDArray[np.int64]  # [N] number of candidates
    mention_score: str
    skipped: tuple[tuple[str, str], ...] = ()  # (item id, reason)

    @property
    def items(self) -> int:
        return int(self.correct.shape[0])

    @property
    def accuracy(self) -> NDArray[np.float64]:
        """[L, H] share of items where the head preferred the antecedent."""
        if not self.items:
            return np.zeros(self.correct.shape[1:], dtype=np.float64)
        return np.asarray(self.correct.mean(axis=0), dtype=np.float64)

    def top_heads(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The k most accurate heads as (layer, head, accuracy), best first (ties: lower layer, head)."""
        acc = self.accuracy
        order = np.argsort(-acc, axis=None, kind="stable")[:k]
        return [(int(i // acc.shape[1]), int(i % acc.shape[1]), float(acc.flat[i])) for i in order]

    @property
    def best_head(self) -> tuple[int, int]:
        layer, head, _ = self.top_heads(1)[0]
        return layer, head

    def held_out_accuracy(self) -> float:
        """Best head picked on the first half scored on the second, and vice versa, averaged (2-fold)."""
        if self.items < 2:
            return float("nan")
        half = self.items // 2
        folds = [np.arange(0, half), np.arange(half, self.items)]
        scores = []
        for pick, score in (folds, folds[::-1]):
            acc = self.correct[pick].mean(axis=0)
            layer, head = np.unravel_index(int(np.argmax(acc)), acc.shape)
            scores.append(float(self.correct[score, layer, head].mean()))
        return float(np.mean(scores))

    def baselines(self) -> dict[str, float]:
        n = max(self.items, 1)
        return {
            "nearest": float(self.nearest.sum() / n),
            "first": float(self.first.sum() / n),
            "chance": float((1.0 / np.maximum(self.candidates, 1)).sum() / n),
        }


def mention_words(item: CorefItem) -> tuple[list[Span], list[NDArray[np.intp]]]:
    """Word spans for alignment (the pronoun first, then each candidate's words) and each candidate's word ids."""
    spans: list[Span] = [item.pronoun]
    groups: list[NDArray[np.intp]] = []
    for start, end in item.candidates:
        parts = [(start + m.start(), start + m.end()) for m in _WORD.finditer(item.text[start:end])]
        if not parts:
            parts = [(start, end)]
        groups.append(np.arange(len(spans), len(spans) + len(parts)))
        spans += parts
    return spans, groups


def head_words(item: CorefItem, spans: Sequence[Span], groups: Sequence[NDArray[np.intp]]) -> list[NDArray[np.intp]]:
    """Each candidate's head word ids (from :func:`mention_words`): the words overlapping the head span the
    data gives, else the mention's last word."""
    out = []
    for c, group in enumerate(groups):
        head = item.heads[c] if c < len(item.heads) else None
        if head is None:
            out.append(group[-1:])
            continue
        inside = [w for w in group if spans[w][0] < head[1] and head[0] < spans[w][1]]
        out.append(np.array(inside or group[-1:], dtype=np.intp))
    return out


def item_scores(
    attention: NDArray[np.floating], tokens: Any, item: CorefItem, mention_score: str = "head"
) -> NDArray[np.float32] | None:
    """[C, L, H] score of each candidate for each head, or None if the pronoun or a scored word has no token.

    ``mention_score``: "head" (attention to the head word; summed if a given head spans several words),
    "max" (to the most-attended word) or "sum" (summed over the mention's words).
    """
    if mention_score not in SCORES:
        raise InputError(f"mention_score must be one of {', '.join(SCORES)}, got {mention_score!r}")
    spans, groups = mention_words(item)
    targets = head_words(item, spans, groups) if mention_score == "head" else groups
    tw = token_to_word(tokens, spans)
    if not (tw == 0).any() or any(not np.isin(g, tw).any() for g in targets):
        return None
    words, _ = word_attention(attention, tw, len(spans))
    row = words[:, :, 0, :]  # [L, H, W]: from the pronoun
    reduce = np.max if mention_score == "max" else np.sum
    return np.stack([reduce(row[..., g], axis=-1) for g in targets]).astype(np.float32)


def nearest_candidate(item: CorefItem) -> int:
    """Index of the candidate closest to the pronoun in characters (the earlier one on ties)."""
    p0, p1 = item.pronoun
    dist = [p0 - end if end <= p0 else start - p1 for start, end in item.candidates]
    return int(np.argmin(dist))


def probe_coref(
    handle: ModelHandle,
    items: Iterable[CorefItem],
    *,
    batch_size: int = 16,
    mention_score: str = "head",
    progress: bool | None = None,
) -> CorefResult:
    """Trace every item (batched) and record, per head, whether the pronoun preferred its antecedent.

    Runs the ``probe coref`` corpus analysis (:mod:`attnscope.probe.coref_analysis`) on the local engine.
    """
    from attnscope.corpus.driver import run_analysis
    from attnscope.corpus.engines import LocalEngine
    from attnscope.probe.coref_analysis import CorefAnalysis

    analysis = CorefAnalysis(mention_score)
    with LocalEngine().open(handle) as session:
        state = run_analysis(analysis, items, session, batch_size=batch_size, progress=progress)
    if state.first is None:
        raise InputError("no coreference items to probe")
    return analysis.result(state)


def _overlapping(spans: Sequence[Span]) -> bool:
    """True if any two spans (sorted by start) share a character."""
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


# -- output --------------------------------------------------------------------------------------

DEFINITIONS = """\
- A head is **right** on an item when the pronoun's attention to the antecedent is strictly higher than to every
  other candidate mention. Attention is word-level (Clark et al. 2019): from the pronoun averaged over its pieces,
  to a word summed over its pieces.
- **Mention score** `head` (default): the attention to the mention's head word, the one the data names, else its
  last word ("the big dog" -> "dog"), so a determiner in one candidate cannot decide the result; `max`: the
  attention to its most-attended word (its words are its whitespace-separated parts); `sum`: summed over its words.
- **Baselines**: `nearest` picks the candidate closest to the pronoun (in characters), `first` the one that appears
  first in the text, `chance` is the mean of 1 / number of candidates.
- **Held-out accuracy**: the best head chosen on the first half of the items, scored on the second half and vice
  versa, averaged; the best head's own accuracy is optimistic, since it is the best of many chosen on the same
  items.
- Heads are `layer-head`, both 0-based.
"""


def _percent(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.1f}"


def coref_table(result: CorefResult, k: int = 5) -> str:
    """The terminal table: the top heads, then the baselines (accuracies in %)."""
    rows: list[list[str]] = [[f"head {layer}-{head}", f"{100 * acc:.1f}"] for layer, head, acc in result.top_heads(k)]
    rows.append(["held-out best head", _percent(result.held_out_accuracy())])
    rows += [[f"baseline: {name}", f"{100 * v:.1f}"] for name, v in result.baselines().items()]
    return text_table(("predictor", "accuracy"), rows)


def coref_report(
    handle: ModelHandle | ModelRef, result: CorefResult, data: str | Path, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """report.json as a dict (schema_version 1)."""
    report = report_header(
        "coref",
        handle.info,
        data,
        items=result.items,
        skipped_items=[{"id": i, "reason": why} for i, why in result.skipped],
    )
    report["settings"] = dict(settings)
    report["definitions"] = {
        "correct": "pronoun attends strictly more to the antecedent than to every other candidate",
        "mention_score": result.mention_score,
        "layer_head": "0-based",
    }
    layer, head = result.best_head
    report["best_head"] = [layer, head]
    report["accuracy"] = round(float(result.accuracy[layer, head]), 6)
    held_out = result.held_out_accuracy()
    report["held_out_accuracy"] = None if np.isnan(held_out) else round(held_out, 6)
    report["baselines"] = {k: round(v, 6) for k, v in result.baselines().items()}
    report["top_heads"] = [{"head": [lh[0], lh[1]], "accuracy": round(lh[2], 6)} for lh in result.top_heads(10)]
    report["per_head"] = rounded(result.accuracy)
    return report


def coref_outputs(
    handle: ModelHandle | ModelRef,
    result: CorefResult,
    data: str | Path,
    settings: Mapping[str, Any],
    example: str | None = None,
    views: bool = True,
    payload: Callable[[str], str] | None = None,
) -> dict[str, str | bytes]:
    """Every file of ``probe coref --out``: report.json, report.md, heatmaps/coref.png, index.html.

    ``payload(text)`` makes the example's head view (default: runs ``handle``, which must then be loaded).
    """
    layer, head = result.best_head
    best = float(result.accuracy[layer, head])
    base = result.baselines()
    title = (
        f"coreference (n={result.items}, score={result.mention_score}): best {layer}-{head} {100 * best:.1f}%, "
        f"nearest {100 * base['nearest']:.1f}%"
    )
    png, box = heatmap_image(result.accuracy, title, mark=(layer, head))
    rows = [[f"{lay}-{hd}", f"{100 * acc:.1f}"] for lay, hd, acc in result.top_heads(10)]
    md = [
        "# Pronoun -> antecedent attention",
        "",
        f"Model {markdown_code(handle.name)} on {markdown_code(Path(data).name)}: {result.items} items"
        + (
            f" ({len(result.skipped)} skipped: "
            + "; ".join(f"{markdown_text(i)}: {why}" for i, why in result.skipped)
            + ")"
            if result.skipped
            else ""
        )
        + f"; mention score `{result.mention_score}`.",
        "",
        f"Best head **{layer}-{head}**: {100 * best:.1f}% (held-out: {_percent(result.held_out_accuracy())}%). "
        f"Baselines: nearest {100 * base['nearest']:.1f}%, first {100 * base['first']:.1f}%, "
        f"chance {100 * base['chance']:.1f}%.",
        "",
        "## Top heads",
        "",
        markdown_table(("head", "accuracy %"), rows),
        "## Definitions",
        "",
        DEFINITIONS,
        "![heatmap](heatmaps/coref.png)",
    ]
    section = {
        "id": "coref",
        "title": "pronoun -> antecedent",
        "png": png,
        "box": box,
        "grid": result.accuracy.tolist(),
        "example": "e0",
        "caption": title,
    }
    intro = f"{handle.name} on {Path(data).name}: per head, how often the pronoun prefers its antecedent."
    examples = {}
    make = payload_maker(handle, payload)
    if views and example and make is not None and view_bundle() is not None:
        examples = {"e0": (example, make(example))}
    return {
        "report.json": to_json(coref_report(handle, result, data, settings)),
        "report.md": "\n".join(md) + "\n",
        "heatmaps/coref.png": png,
        "index.html": linked_page("attnscope probe coref", intro, [section], examples),
    }
