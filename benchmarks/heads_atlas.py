"""The head atlas of two models on EWT dev, side by side with what Clark et al. (2019) report for BERT-base.

Runs the real command, ``attnscope heads``, four times: the embedded MiniLM (6x12) and the small masked LM
``shared/models/tiny-bert-mlm-ewt`` (4x4, trained on EWT train; its card says its attention is still close
to uniform), each on
  - sentences: EWT dev, one sentence per input (``[CLS] s [SEP]``);
  - pairs: consecutive dev sentences as ``[CLS] a [SEP] b [SEP]`` (JSON lines text/text_pair), the closest
    thing here to Clark et al.'s inputs (two consecutive Wikipedia paragraphs, at most 128 tokens).
Then it reads each report.json and writes benchmarks/results/heads.md: per-layer attention to [CLS],
[SEP], punctuation and the rest; and, for each of Clark et al.'s surface-level findings, our numbers and
whether they agree (by the rule stated beside each).

Run: .venv/bin/python benchmarks/heads_atlas.py [--limit N] [--results PATH]   (a --limit run writes
nothing unless --results is given)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "ud-ewt" / "en_ewt-uds-dev.conllu"
TINY_BERT = SHARED / "models" / "tiny-bert-mlm-ewt"
RESULTS = Path(__file__).resolve().parent / "results" / "heads.md"
SHARE = 0.5

CLARK = """\
## What Clark et al. (2019) report for BERT-base

*"What Does BERT Look At? An Analysis of BERT's Attention"* (BlackboxNLP 2019), section 3 (surface-level
patterns), BERT-base (12 layers x 12 heads) over 1,000 random Wikipedia segments of at most 128 tokens,
`[CLS] paragraph-1 [SEP] paragraph-2 [SEP]`. The paper's own text was not available to this benchmark; the
findings below are stated qualitatively, as the abstract and public summaries of section 3 give them
(deepai.org's copy of the abstract; reading notes at zhiyuchen.com, thecharlieblake.co.uk and
peratham.medium.com), and the layer numbers are the paper's as those summaries quote them (not
necessarily 0-based as ours are):

1. **[SEP]**: a large amount of attention goes to [SEP], in the middle layers; summaries quote "over half of
   the attention in layers 6-10" going to [SEP] (Fig. 2).
2. **[CLS]**: early heads attend to [CLS] (Fig. 2).
3. **Punctuation**: deep heads attend to periods and commas (Fig. 2).
4. **Current token**: most heads put little attention on the current token.
5. **Positional heads**: some heads specialise in attending heavily to the previous or next token,
   especially in earlier layers (summaries quote four heads with > 50 % on the previous token, in layers 2,
   4, 7 and 8, and five with > 50 % on the next token, in layers 1, 2, 2, 3 and 6).
6. **Broad heads**: some heads attend broadly over the whole sentence (abstract); the high-entropy ones are
   described as lying in the lower layers.
"""


def write_pairs(path: Path, limit: int | None) -> int:
    """Consecutive dev sentences as JSON lines ``{"text": a, "text_pair": b}`` (non-overlapping pairs)."""
    from attnscope.corpus.readers import read_corpus

    texts = [item.text for item in read_corpus(DEV, limit=limit)]
    lines = [json.dumps({"text": a, "text_pair": b}) for a, b in zip(texts[::2], texts[1::2], strict=False)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def atlas(model: str | None, corpus: Path, limit: int | None, batch_size: int, tmp: Path) -> dict[str, Any]:
    """report.json of ``attnscope heads`` on ``corpus`` with ``model`` (None: the embedded MiniLM)."""
    from attnscope.cli import main

    out = tmp / f"out-{len(list(tmp.iterdir()))}"
    argv = ["heads", "--corpus", str(corpus), "--out", str(out), "--batch-size", str(batch_size), "--no-progress"]
    argv += ["--model", model] if model else []
    argv += ["--limit", str(limit)] if limit else []
    if main(argv) != 0:
        sys.exit(f"attnscope heads failed: {' '.join(argv)}")
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def _heads(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for row in report["heads"] for h in row]


def _half(report: dict[str, Any]) -> int:
    return max(1, len(report["layers"]) // 2)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _by_half(report: dict[str, Any], value: Callable[[dict[str, Any]], float]) -> tuple[float, float]:
    half = _half(report)
    heads = _heads(report)
    return (
        _mean([value(h) for h in heads if h["layer"] < half]),
        _mean([value(h) for h in heads if h["layer"] >= half]),
    )


def _peak(report: dict[str, Any], key: str) -> tuple[int, float]:
    values = [row[key] for row in report["layers"]]
    layer = max(range(len(values)), key=lambda i: values[i])
    return layer, values[layer]


def _depth(report: dict[str, Any], layer: int) -> str:
    n = len(report["layers"])
    where = (layer + 0.5) / n
    return "lower" if where < 1 / 3 else "middle" if where < 2 / 3 else "upper"


def findings(report: dict[str, Any]) -> list[tuple[str, bool]]:
    """One (evidence, agrees with Clark et al.) per finding of :data:`CLARK`, in its order."""
    half, n = _half(report), len(report["layers"])
    out: list[tuple[str, bool]] = []
    layer, share = _peak(report, "sep")
    many = [h for h in _heads(report) if h["stats"]["sep"] >= SHARE]
    out.append((f"peak layer {layer} ({_depth(report, layer)} of {n}), {100 * share:.1f} %; "
                f"{len(many)} heads >= 50 %", _depth(report, layer) != "lower" and share >= SHARE))  # fmt: skip
    lo, hi = _by_half(report, lambda h: h["stats"]["first"])
    layer, share = _peak(report, "cls")
    out.append((f"peak layer {layer}, {100 * share:.1f} %; lower half {100 * lo:.1f} %, upper {100 * hi:.1f} %",
                lo > hi))  # fmt: skip
    layer, share = _peak(report, "punct")
    out.append(
        (f"peak layer {layer} ({'upper' if layer >= half else 'lower'} half), {100 * share:.1f} %", layer >= half)
    )
    selfs = sorted(h["stats"]["self"] for h in _heads(report))
    little = sum(s < 0.1 for s in selfs)
    out.append((f"median {100 * selfs[len(selfs) // 2]:.1f} %; {little}/{len(selfs)} heads < 10 %",
                little > len(selfs) / 2))  # fmt: skip
    positional = [(h, kind) for h in _heads(report) for kind in ("previous", "next") if h["stats"][kind] >= SHARE]
    listed = ", ".join(f"{kind} {h['layer']}-{h['head']} ({100 * h['stats'][kind]:.0f} %)" for h, kind in positional)
    early = sum(h["layer"] < half for h, _ in positional)
    out.append((listed or "none >= 50 %", bool(positional) and early >= len(positional) / 2))
    lo, hi = _by_half(report, lambda h: h["stats"]["entropy_norm"])
    broad = [h for h in _heads(report) if h["role"] == "broad"]
    low_broad = sum(h["layer"] < half for h in broad)
    out.append(
        (
            f"broad heads {low_broad} in the lower half, {len(broad) - low_broad} in the upper; mean "
            f"normalised entropy {lo:.2f} / {hi:.2f}",
            low_broad > len(broad) - low_broad,
        )
    )
    return out


def markdown(runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    from attnscope.probe.report import markdown_table

    names = list(runs)
    lines = [
        "# Head atlas: MiniLM and tiny-bert-mlm-ewt on EWT dev, beside Clark et al. (2019)",
        "",
        f"`python benchmarks/heads_atlas.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}. Layers and heads "
        "0-based; shares are the mean share of a non-special query token's attention (`attnscope heads`, "
        "definitions in the README).",
        "",
        CLARK,
        "## Our numbers and Clark et al.'s findings",
        "",
        "Agreement rules: 1. the layer with most [SEP] attention is not in the lower third and holds >= 50 %; "
        "2. lower half > upper half; 3. the punctuation peak is in the upper half; 4. most heads < 10 % on "
        "themselves; 5. some head >= 50 % on previous/next, at least half of them in the lower half; 6. more `broad` "
        "heads (normalised entropy >= 0.8 and no share >= 50 %) in the lower half than in the upper.",
        "",
    ]
    found = {name: findings(r) for name, r in runs.items()}
    rows = []
    labels = (
        "[SEP] in middle layers", "[CLS] in early layers", "punctuation in deep layers",
        "little attention to itself", "previous/next-token heads, early", "broad heads in lower layers",
    )  # fmt: skip
    for i, label in enumerate(labels):
        cells = [f"{'agrees' if found[n][i][1] else 'DIFFERS'}: {found[n][i][0]}" for n in names]
        rows.append((label, *cells))
    lines += [markdown_table(("finding (Clark et al.)", *names), rows), "Where they differ:", ""]
    for i, label in enumerate(labels):
        differ = [n for n in names if not found[n][i][1]]
        if differ:
            lines.append(f"- {label}: " + "; ".join(f"*{n}* ({found[n][i][0]})" for n in differ))
    lines.append("")
    for name, report in runs.items():
        lines += [
            f"## {name}: attention by layer (%)",
            "",
            f"{report['sentences']} inputs, {report['rows']} query rows, skipped {report['skipped'] or 'none'}; roles: "
            + ", ".join(f"{r} {c}" for r, c in sorted(_roles(report).items(), key=lambda kv: (-kv[1], kv[0]))),
            "",
            markdown_table(
                ("layer", "[CLS]", "[SEP]", "punct", "other"),
                [
                    (i, *(f"{100 * row[k]:.1f}" for k in ("cls", "sep", "punct", "other")))
                    for i, row in enumerate(report["layers"])
                ],
            ),
        ]
        for claim in report["claims"]:
            verdict = {True: "holds", False: "does not hold", None: "n/a"}[claim["holds"]]
            lines.append(f"- book: {claim['claim']}: **{verdict}** ({claim['evidence']})")
        lines.append("")
    lines += ["## Raw numbers", "", "```json", json.dumps({n: _summary(r) for n, r in runs.items()}, indent=1), "```"]
    return "\n".join(lines) + "\n"


def _roles(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in _heads(report):
        counts[h["role"]] = counts.get(h["role"], 0) + 1
    return counts


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"model": report["model"], "sentences": report["sentences"], "layers": report["layers"],
            "roles": [[h["role"] for h in row] for row in report["heads"]]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N dev sentences only (default: all 2,002)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--results", type=Path, default=None, help="write the Markdown here")
    args = parser.parse_args()
    for need in (DEV, TINY_BERT):
        if not need.exists():
            sys.exit(f"not found: {need}")
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        pairs = tmp / "pairs.jsonl"
        write_pairs(pairs, args.limit)
        for label, model in (("MiniLM", None), ("tiny-bert-mlm-ewt", str(TINY_BERT))):
            runs[f"{label}, sentences"] = atlas(model, DEV, args.limit, args.batch_size, tmp)
            runs[f"{label}, pairs"] = atlas(model, pairs, None, args.batch_size, tmp)
    text = markdown(runs, args)
    print(text)
    target = args.results or (None if args.limit else RESULTS)
    if target is not None:
        from attnscope.files import write_atomic

        write_atomic(target, text)
        print(f"written to {target}")


if __name__ == "__main__":
    main()
