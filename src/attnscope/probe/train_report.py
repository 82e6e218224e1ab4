"""Files of ``attnscope probe train``: report.json, report.md, the learned weights as PNG heatmaps and an HTML page.

report.json (schema of :mod:`attnscope.probe.report`, analysis ``"train"``) holds, beyond the common header:
``eval_data`` (file, sha256, counts), ``settings``, ``uas`` and ``uas_with_punct`` on the evaluation set,
``train_uas``, ``final_loss``, ``baselines`` (``right_branching`` and ``distance``: ``uas``,
``uas_with_punct``; the distance probe's weights), ``weights`` ([layers][heads] grids ``dep_to_head``,
``head_to_dep``, ``root`` and the scalar ``root_bias``) and ``top_heads`` (largest weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.probe.data import SkippedSentence
from attnscope.probe.train import DISTANCE_FEATURES, TrainResult, head_weights
from attnscope.text import markdown_code, markdown_text

if TYPE_CHECKING:
    from attnscope.corpus.protocol import ModelRef
    from attnscope.loading import ModelHandle


def train_outputs(
    handle: ModelHandle | ModelRef,
    result: TrainResult,
    train_file: Path,
    eval_file: Path,
    settings: dict[str, Any],
    not_trees: tuple[Sequence[SkippedSentence], Sequence[SkippedSentence]] = ((), ()),
) -> dict[str, str | bytes]:
    """report.json, report.md, index.html and heatmaps/{dep_to_head,head_to_dep,root}.png (weights per head).

    ``not_trees``: the training and evaluation files' sentences skipped because their arcs are not one tree.
    """
    from attnscope.probe.report import (
        file_sha256,
        heatmap_image,
        heatmap_page,
        markdown_table,
        report_header,
        rounded,
        to_json,
    )

    info = handle.info
    grids = head_weights(result.probe, info.num_layers, info.num_heads)
    sc = result.scores
    report = report_header(
        "train",
        info,
        train_file,
        sentences=result.train_sentences,
        skipped=result.train_skipped,
        skipped_not_trees=len(not_trees[0]),
        words=result.train_words,
    )
    report["eval_data"] = {
        "file": str(eval_file.resolve()),
        "sha256": file_sha256(eval_file),
        "sentences": result.eval_sentences,
        "skipped": result.eval_skipped,
        "skipped_not_trees": len(not_trees[1]),
        "words": sc["probe"]["words"],
        "words_scored": sc["probe"]["words_scored"],
    }
    report["settings"] = {
        **settings,
        "optimizer": "Adam, learning rate falling linearly to 0, weights start at 0",
        "punctuation": "words attached by 'punct' are left out of uas (as Clark et al.); uas_with_punct counts them",
        "root": "ROOT scored by a per-head weight on the word's attention share to special tokens, plus a bias",
        "skipped": "sentences truncated by the model or with a word that no token covers",
    }
    report["uas"] = round(float(sc["probe"]["uas"]), 6)
    report["uas_with_punct"] = round(float(sc["probe"]["uas_with_punct"]), 6)
    report["train_uas"] = round(float(sc["probe_train"]["uas"]), 6)
    report["final_loss"] = round(result.probe.final_loss, 6)
    report["baselines"] = {
        "right_branching": {k: round(float(sc["right_branching"][k]), 6) for k in ("uas", "uas_with_punct")},
        "distance": {
            **{k: round(float(sc["distance"][k]), 6) for k in ("uas", "uas_with_punct")},
            "weights": dict(zip(DISTANCE_FEATURES, rounded(result.distance.w), strict=True)),
            "root_bias": round(float(result.distance.r[0]), 6),
        },
    }
    report["weights"] = {name: rounded(grid) for name, grid in grids.items()}
    report["weights"]["root_bias"] = round(float(result.probe.r[-1]), 6)
    report["top_heads"] = [
        {"layer": li, "head": h, "direction": d, "weight": round(v, 6)} for li, h, d, v in top_weights(grids, 10)
    ]

    pngs = {}
    for name, grid in grids.items():
        bound = float(max(np.abs(grid).max(), 1e-9))
        pngs[name] = heatmap_image(grid, f"{name} weight per head", vmin=-bound, vmax=bound, label="weight")[0]
    model_line = f"{info.name} ({info.num_layers} layers x {info.num_heads} heads)"
    rows = [
        ["attention-only probe", f"{report['uas']:.3f}", f"{report['uas_with_punct']:.3f}"],
        ["right-branching", f"{sc['right_branching']['uas']:.3f}", f"{sc['right_branching']['uas_with_punct']:.3f}"],
        ["distance-only probe", f"{sc['distance']['uas']:.3f}", f"{sc['distance']['uas_with_punct']:.3f}"],
    ]
    md = [
        "# Attention-only probing classifier (Clark et al. 2019, §5)\n",
        f"Model: {markdown_text(model_line)}. Trained on {result.train_sentences} sentences of "
        f"{markdown_code(train_file.name)} ({result.train_skipped} skipped), scored on {result.eval_sentences} of "
        f"{markdown_code(eval_file.name)} "
        f"({result.eval_skipped} skipped): {sc['probe']['words_scored']} words without punctuation, "
        f"{sc['probe']['words']} with it.\n",
        markdown_table(["method", "UAS (no punct)", "UAS (with punct)"], rows),
        f"Epochs {settings['epochs']}, seed {settings['seed']}, learning rate {settings['lr']}; training-set UAS "
        f"{report['train_uas']:.3f}, final training loss {report['final_loss']:.4f}. "
        + str(report["settings"]["root"])
        + ".\n",
        "## Heads with the largest weights\n",
        markdown_table(
            ["layer-head", "direction", "weight"],
            [[f"{t['layer']}-{t['head']}", t["direction"], t["weight"]] for t in report["top_heads"]],
        ),
        "dep_to_head weighs the dependent's attention to the candidate, head_to_dep the candidate's attention "
        "to the dependent, root the dependent's attention to special tokens (ROOT's score).\n",
        *(f"![{name}](heatmaps/{name}.png)\n" for name in pngs),
    ]
    sections = [{"id": name, "title": f"{name} weights", "png": png} for name, png in pngs.items()]
    page = heatmap_page(
        "attnscope probe train: learned weights per head",
        f"{model_line}: dev UAS {report['uas']:.3f} (right-branching {rows[1][1]}, distance-only {rows[2][1]}).",
        sections,
    )
    files: dict[str, str | bytes] = {"report.json": to_json(report), "report.md": "\n".join(md), "index.html": page}
    files.update({f"heatmaps/{name}.png": png for name, png in pngs.items()})
    return files


def top_weights(grids: dict[str, NDArray[np.float64]], k: int) -> list[tuple[int, int, str, float]]:
    """The k (layer, head, direction, weight) with the largest weights (positive = evidence for the arc)."""
    entries = [
        (int(li), int(h), name, float(grid[li, h])) for name, grid in grids.items() for li, h in np.ndindex(grid.shape)
    ]
    return sorted(entries, key=lambda e: (-e[3], e[0], e[1], e[2]))[:k]
