"""``attnscope probe ...``: one subcommand per probing analysis (deps, coref; train registers itself here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.cli import add_model_options, load_from_args

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: SubParsers) -> None:
    """Add ``probe`` and its analyses to the ``attnscope`` command line."""
    probe = subparsers.add_parser(
        "probe",
        help="measure which heads encode a linguistic relation (dependencies, coreference, trained probe)",
        description="Probing analyses after Clark et al. (2019), 'What Does BERT Look At?'. Each writes "
        "report.json, report.md, PNG heatmaps and an HTML page into --out.",
    )
    analyses = probe.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True, help="the analysis to run")
    _register_deps(analyses)
    _register_coref(analyses)
    from attnscope.probe.train import add_cli as add_train  # defines ``probe train`` and its options

    add_train(analyses)


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N sentences/items")
    p.add_argument("--batch-size", type=int, default=16, metavar="B", help="texts per forward pass (default 16)")
    p.add_argument(
        "--out", type=Path, default=Path(default_out), metavar="DIR", help=f"output folder (default {default_out})"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_model_options(p)


def _register_deps(analyses: SubParsers) -> None:
    p = analyses.add_parser(
        "deps",
        help="per relation, how often each head's most-attended word is the syntactic head",
        description="For every attention head and every dependency relation in a CoNLL-U treebank: the "
        "accuracy with which the dependent's most-attended other word is its head (and the reverse "
        "direction), against the best fixed-offset baseline (Clark et al. 2019, Table 1).",
    )
    p.add_argument("--treebank", type=Path, required=True, metavar="FILE", help="CoNLL-U file with gold trees")
    p.add_argument("--max-offset", type=int, default=10, metavar="K", help="baseline offsets -K..K (default 10)")
    p.add_argument("--base-labels", action="store_true", help="merge subtypes: nmod:poss counts as nmod")
    p.add_argument(
        "--min-count", type=int, default=10, metavar="N", help="tables and heatmaps for relations with >= N arcs"
    )
    _common(p, "probe-deps")
    p.set_defaults(func=_cmd_deps)


def _register_coref(analyses: SubParsers) -> None:
    p = analyses.add_parser(
        "coref",
        help="per head, how often a pronoun attends more to its antecedent than to the other candidates",
        description="For every attention head: how often the pronoun attends more to its antecedent than "
        "to every other candidate mention, with nearest- and first-candidate baselines.",
    )
    p.add_argument("--data", type=Path, required=True, metavar="FILE", help="coreference items, JSON lines")
    p.add_argument(
        "--mention-score",
        choices=("head", "max", "sum"),
        default="head",
        help="score of a multi-word mention: its head word (head, default: the data's head or the last word), "
        "its most-attended word (max) or the sum over its words (sum)",
    )
    _common(p, "probe-coref")
    p.set_defaults(func=_cmd_coref)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _check_counts(args: argparse.Namespace) -> None:
    from attnscope.errors import InputError
    from attnscope.probe.report import check_out

    check_out(args.out)

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")


def _cmd_deps(args: argparse.Namespace) -> int:
    from attnscope.probe.data import SkippedSentence, read_treebank, warn_skipped
    from attnscope.probe.deps import probe_deps
    from attnscope.probe.deps_report import deps_outputs, deps_table
    from attnscope.probe.report import write_outputs

    _check_counts(args)
    skipped: list[SkippedSentence] = []
    # whole file checked before the model runs; sentences that are not one tree are skipped and reported
    sentences = list(read_treebank(args.treebank, limit=args.limit, on_skip=warn_skipped(skipped)))
    handle = load_from_args(args)
    counts = probe_deps(
        handle,
        sentences,
        batch_size=args.batch_size,
        max_offset=args.max_offset,
        base_labels=args.base_labels,
        progress=_progress(args),
    )
    settings = {
        "limit": args.limit,
        "batch_size": args.batch_size,
        "max_offset": args.max_offset,
        "base_labels": args.base_labels,
        "min_count": args.min_count,
    }
    files = deps_outputs(handle, counts, args.treebank, settings, skipped=skipped)
    write_outputs(args.out, files)
    _print(deps_table(counts, args.min_count))
    _print(f"{counts.sentences} sentences, model {handle.name}; report written to {args.out.resolve()}/")
    return 0


def _cmd_coref(args: argparse.Namespace) -> int:
    from attnscope.probe.coref import coref_outputs, coref_table, probe_coref
    from attnscope.probe.data import read_coref
    from attnscope.probe.report import write_outputs

    _check_counts(args)
    items = list(read_coref(args.data, limit=args.limit))
    handle = load_from_args(args)
    result = probe_coref(
        handle, items, batch_size=args.batch_size, mention_score=args.mention_score, progress=_progress(args)
    )
    settings = {"limit": args.limit, "batch_size": args.batch_size, "mention_score": args.mention_score}
    write_outputs(args.out, coref_outputs(handle, result, args.data, settings, example=items[0].text))
    _print(coref_table(result))
    _print(f"{result.items} items, model {handle.name}; report written to {args.out.resolve()}/")
    return 0


def _print(text: Any) -> None:
    sys.stdout.write(str(text).rstrip("\n") + "\n")
