"""The files ``probe deps`` writes: report.json, report.md, one PNG heatmap per relation, index.html."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.corpus.protocol import payload_maker
from attnscope.probe.data import SkippedSentence
from attnscope.probe.deps import ALL, DIRECTIONS, DepsCounts, RelationResult
from attnscope.probe.page import linked_page, view_bundle
from attnscope.probe.report import (
    heatmap_image,
    markdown_table,
    report_header,
    rounded,
    text_table,
    to_json,
)
from attnscope.text import markdown_code, markdown_text

if TYPE_CHECKING:
    from attnscope.corpus.protocol import ModelRef
    from attnscope.loading import ModelHandle

HEADERS = ("relation", "count", "best head", "direction", "accuracy", "offset", "baseline", "margin")

DEFINITIONS = """\
- **Accuracy** of a head for a relation: the share of arcs (dependent, head) of that relation where the head
  predicts the syntactic head. Direction `dependent->head`: the word the dependent attends to most, other than
  itself. Direction `head->dependent`: the word that attends most to the dependent (Clark et al.'s reverse
  direction). Attention is converted to words as Clark et al. (2019) did: attention *to* a word split into
  pieces is summed over its pieces, attention *from* it is averaged; special tokens are never predicted.
- **Best head**: `layer-head`, both 0-based; ties go to the first in (direction, layer, head) order.
- **Baseline**: always predicting the word at a fixed offset from the dependent (offset = head position minus
  dependent position), with the best offset chosen per relation from -K..K.
- **Margin**: best head's accuracy minus the baseline's.
- **all relations**: every arc except `punct` (and the root, which has no head).
- **Special share**: the mean share of a word's attention that goes to special tokens ([CLS], [SEP], ...), which
  word attention leaves out.
"""


def file_stem(label: str) -> str:
    """A file-name-safe stem for a relation label: ``nmod:poss`` -> ``nmod_poss``."""
    return "all" if label == ALL else re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_") or "relation"


def row(result: RelationResult) -> list[str]:
    """One table row: relation, count, best head, direction, accuracy %, offset, baseline %, margin (points)."""
    d, layer, head = result.best
    return [
        result.label,
        str(result.count),
        f"{layer}-{head}",
        DIRECTIONS[d],
        f"{100 * result.best_accuracy:.1f}",
        f"{result.baseline_offset:+d}",
        f"{100 * result.baseline_accuracy:.1f}",
        f"{100 * (result.best_accuracy - result.baseline_accuracy):+.1f}",
    ]


def deps_table(counts: DepsCounts, min_count: int = 10) -> str:
    """The compact terminal table (accuracies in %)."""
    return text_table(HEADERS, [row(r) for r in counts.results(min_count)])


def deps_report(
    handle: ModelHandle | ModelRef,
    counts: DepsCounts,
    treebank: str | Path,
    settings: Mapping[str, Any],
    skipped: Sequence[SkippedSentence] = (),
) -> dict[str, Any]:
    """report.json as a dict (schema_version 1; see :mod:`attnscope.probe.report`).

    ``skipped``: the treebank's sentences that were not one tree (:func:`read_treebank`'s ``on_skip``).
    """
    report = report_header(
        "deps",
        handle.info,
        treebank,
        sentences=counts.sentences,
        words=counts.words,
        arcs=int(sum(r.count for r in counts.results(1)[:-1])),
        skipped_arcs=counts.skipped_arcs,
        skipped_words=counts.skipped_words,
        skipped_sentences=len(skipped),
        skipped=[{"line": s.line, "sent_id": s.sent_id, "reason": s.reason} for s in skipped],
    )
    report["settings"] = dict(settings)
    report["definitions"] = {
        "directions": list(DIRECTIONS),
        "baseline": "the word at a fixed offset (head position minus dependent position) from the dependent",
        "all_relations": "every arc except punct",
        "layer_head": "0-based",
    }
    share = counts.special_share
    report["special_share"] = {"mean": round(float(share.mean()), 6), "per_head": rounded(share)}
    results = counts.results(1)
    report["relations"] = {r.label: r.to_json() for r in results[:-1]}
    report["all_relations"] = results[-1].to_json()
    return report


def deps_markdown(
    handle: ModelHandle | ModelRef,
    counts: DepsCounts,
    treebank: str | Path,
    min_count: int,
    skipped: Sequence[SkippedSentence] = (),
) -> str:
    """report.md: what was measured, the table, definitions, and the heatmaps."""
    results = counts.results(min_count)
    share = counts.special_share
    lines = [
        "# Dependency heads found by attention heads",
        "",
        f"Model {markdown_code(handle.name)} ({handle.info.num_layers} layers x {handle.info.num_heads} heads) on "
        f"{markdown_code(Path(treebank).name)}: {counts.sentences} sentences, {counts.words} words, "
        f"{sum(r.count for r in counts.results(1)[:-1])} arcs"
        + (
            f" ({counts.skipped_arcs} arcs skipped: {counts.skipped_words} words the tokenizer dropped or cut off)"
            if counts.skipped_arcs
            else ""
        )
        + ".",
        *(
            [
                "",
                f"{len(skipped)} sentences skipped, their arcs not one tree: "
                + "; ".join(f"line {s.line} ({markdown_text(s.sent_id)}): {markdown_text(s.reason)}" for s in skipped)
                + ".",
            ]
            if skipped
            else []
        ),
        "",
        f"Relations with at least {min_count} arcs; accuracies and margins in %.",
        "",
        markdown_table(HEADERS, [row(r) for r in results]),
        "## Definitions",
        "",
        DEFINITIONS,
        "## Special tokens",
        "",
        f"On average {100 * share.mean():.1f}% of a word's attention goes to special tokens; per layer: "
        + ", ".join(f"{layer}: {100 * v:.1f}%" for layer, v in enumerate(share.mean(axis=1)))
        + ".",
        "",
        "## Heatmaps",
        "",
        "Accuracy of every head (rows: layers, columns: heads) in the best head's direction; the best head is "
        "circled. `index.html` shows them all on one page.",
        "",
    ]
    lines += [f"- [{markdown_text(r.label)}](heatmaps/{file_stem(r.label)}.png)" for r in results]
    return "\n".join(lines) + "\n"


def relation_heatmap(result: RelationResult) -> tuple[bytes, tuple[float, float, float, float]]:
    """The layers x heads accuracy heatmap of one relation, in its best head's direction, and its grid box."""
    d, layer, head = result.best
    title = (
        f"{result.label} (n={result.count}, {DIRECTIONS[d]}): best {layer}-{head} "
        f"{100 * result.best_accuracy:.1f}%, offset {result.baseline_offset:+d} {100 * result.baseline_accuracy:.1f}%"
    )
    return heatmap_image(result.accuracy[d], title, mark=(layer, head))


def deps_outputs(
    handle: ModelHandle | ModelRef,
    counts: DepsCounts,
    treebank: str | Path,
    settings: Mapping[str, Any],
    views: bool = True,
    skipped: Sequence[SkippedSentence] = (),
    payload: Callable[[str], str] | None = None,
) -> dict[str, str | bytes]:
    """Every file of ``probe deps --out``: name -> content (``views``: link heads to head views in index.html).

    ``payload(text)`` makes an example's head view (default: runs ``handle``, which must then be loaded).
    """
    min_count = int(settings.get("min_count", 10))
    results = counts.results(min_count)
    files: dict[str, str | bytes] = {
        "report.json": to_json(deps_report(handle, counts, treebank, settings, skipped)),
        "report.md": deps_markdown(handle, counts, treebank, min_count, skipped),
    }
    sections = []
    keys: dict[str, str] = {}  # example sentence -> key
    for r in results:
        png, box = relation_heatmap(r)
        files[f"heatmaps/{file_stem(r.label)}.png"] = png
        d, layer, head = r.best
        example = counts.examples.get(r.label)
        if example is not None:
            keys.setdefault(example.text, f"e{len(keys)}")
        sections.append(
            {
                "id": f"rel-{file_stem(r.label)}",
                "title": f"{r.label} (n={r.count})",
                "png": png,
                "box": box,
                "grid": r.accuracy[d].tolist(),
                "example": keys[example.text] if example is not None else "",
                "caption": f"best head {layer}-{head} ({DIRECTIONS[d]}) {100 * r.best_accuracy:.1f}% vs "
                f"offset {r.baseline_offset:+d} {100 * r.baseline_accuracy:.1f}%",
            }
        )
    intro = (
        f"{handle.name} on {Path(treebank).name} ({counts.sentences} sentences): accuracy of every head "
        "(rows: layers, columns: heads, 0-based) at finding each word's syntactic head."
    )
    examples = {}
    make = payload_maker(handle, payload)
    if views and make is not None and view_bundle() is not None:
        examples = {key: (text, make(text)) for text, key in keys.items()}
    files["index.html"] = linked_page("attnscope probe deps", intro, sections, examples)
    return files
