"""``attnscope probe ...``: deps, coref and train, each a corpus analysis run by the one driver.

Every analysis gets the driver's flags (:func:`attnscope.corpus.driver.add_corpus_options`): ``--model``,
``--limit``, ``--batch-size``, ``--device``, ``--out``, ``--engine local|ray``, ``--address``,
``--workers``, ``--checkpoint``, ``--no-progress``; ``--out`` and the input files are checked before a
model loads, and ``--out`` is replaced only when the run succeeded.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.corpus.driver import add_corpus_options

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: SubParsers) -> None:
    """Add ``probe`` and its analyses to the ``attnscope`` command line."""
    probe = subparsers.add_parser(
        "probe",
        help="measure which heads encode a linguistic relation (dependencies, coreference, trained probe)",
        description="Probing analyses after Clark et al. (2019), 'What Does BERT Look At?'. Each writes "
        "report.json, report.md, PNG heatmaps and an HTML page into --out, replacing its earlier content.",
    )
    analyses = probe.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True, help="the analysis to run")
    _register_deps(analyses)
    _register_coref(analyses)
    _register_train(analyses)


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
    add_corpus_options(p, "probe-deps")
    p.set_defaults(func=_cmd_deps)


def _register_coref(analyses: SubParsers) -> None:
    from attnscope.probe.coref import SCORES

    p = analyses.add_parser(
        "coref",
        help="per head, how often a pronoun attends more to its antecedent than to the other candidates",
        description="For every attention head: how often the pronoun attends more to its antecedent than "
        "to every other candidate mention, with nearest- and first-candidate baselines.",
    )
    p.add_argument("--data", type=Path, required=True, metavar="FILE", help="coreference items, JSON lines")
    p.add_argument(
        "--mention-score",
        choices=SCORES,
        default="head",
        help="score of a multi-word mention: its head word (head, default: the data's head or the last word), "
        "its most-attended word (max) or the sum over its words (sum)",
    )
    add_corpus_options(p, "probe-coref")
    p.set_defaults(func=_cmd_coref)


def _register_train(analyses: SubParsers) -> None:
    from attnscope.probe.train import DEFAULT_LIMIT, EPOCHS, LEARNING_RATE

    p = analyses.add_parser(
        "train",
        help="train the attention-only probing classifier and report its UAS against baselines",
        description="Clark et al. (2019, §5): a word's head is predicted by a softmax over a learned weighted "
        "sum of every head's word-level attention in both directions. Trained on TRAIN, UAS on DEV "
        "(punctuation excluded), against right-branching and a distance-only probe. Deterministic given --seed.",
    )
    p.add_argument("--treebank", type=Path, required=True, metavar="TRAIN", help="CoNLL-U training trees")
    p.add_argument("--eval", type=Path, required=True, metavar="DEV", help="CoNLL-U evaluation trees")
    p.add_argument(
        "--eval-limit", type=int, default=None, metavar="N", help="first N evaluation sentences (default all)"
    )
    p.add_argument(
        "--epochs", type=int, default=EPOCHS, metavar="E", help=f"passes over the training set (default {EPOCHS})"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="order of training batches (default 0)")
    p.add_argument(
        "--lr", type=float, default=LEARNING_RATE, help=f"Adam's starting learning rate (default {LEARNING_RATE})"
    )
    add_corpus_options(p, "probe-train", limit_default=DEFAULT_LIMIT)
    p.set_defaults(func=_cmd_train)


def _cmd_deps(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items, payload_function, settings_of
    from attnscope.corpus.protocol import Finalize
    from attnscope.probe.data import SkippedSentence, read_treebank, warn_skipped
    from attnscope.probe.deps_analysis import DepsAnalysis, counts_of
    from attnscope.probe.deps_report import deps_table

    job = CorpusJob.from_args(args)
    # the whole file is read once before the model loads: malformed lines stop here; sentences that are not
    # one tree are skipped, warned about once and reported
    skipped: list[SkippedSentence] = []
    total = count_items(read_treebank(args.treebank, limit=args.limit, on_skip=warn_skipped(skipped)), "sentences")
    analysis = DepsAnalysis(args.max_offset, args.base_labels, skipped=skipped)
    settings = settings_of(args, ("limit", "batch_size", "max_offset", "base_labels", "min_count"))
    data = {"treebank": args.treebank}
    with job.open() as session:
        state = job.run(
            session, analysis, lambda: read_treebank(args.treebank, limit=args.limit, on_skip=_quiet), data, total
        )
        files = analysis.finalize(state, Finalize(session.model, data, settings, payload_function(session)))
        name = session.model.name
    out = job.write(files)
    counts = counts_of(state)
    _print(deps_table(counts, args.min_count))
    _print(f"{counts.sentences} sentences, model {name}; report written to {out.resolve()}/")
    return 0


def _cmd_coref(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items, payload_function, settings_of
    from attnscope.corpus.protocol import Finalize
    from attnscope.probe.coref import coref_table
    from attnscope.probe.coref_analysis import CorefAnalysis
    from attnscope.probe.data import read_coref

    job = CorpusJob.from_args(args)
    analysis = CorefAnalysis(args.mention_score)
    total = count_items(read_coref(args.data, limit=args.limit), "coreference items")
    settings = settings_of(args, ("limit", "batch_size", "mention_score"))
    data = {"data": args.data}
    with job.open() as session:
        state = job.run(session, analysis, lambda: read_coref(args.data, limit=args.limit), data, total)
        files = analysis.finalize(state, Finalize(session.model, data, settings, payload_function(session)))
        name = session.model.name
    out = job.write(files)
    result = analysis.result(state)
    _print(coref_table(result))
    _print(f"{result.items} items, model {name}; report written to {out.resolve()}/")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items
    from attnscope.errors import InputError
    from attnscope.probe.data import SkippedSentence, read_treebank, warn_skipped
    from attnscope.probe.report import text_table
    from attnscope.probe.train import BATCH_SENTENCES, MAX_LEARNING_RATE, train_probes
    from attnscope.probe.train_analysis import FeatureAnalysis
    from attnscope.probe.train_report import train_outputs

    job = CorpusJob.from_args(args)  # --out is checked here, before any model loads or trains
    for flag, value in (("--eval-limit", args.eval_limit), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    if not (math.isfinite(args.lr) and 0 < args.lr <= MAX_LEARNING_RATE):
        raise InputError(f"--lr must be a positive finite number up to {MAX_LEARNING_RATE}, got {args.lr}")
    not_trees: tuple[list[SkippedSentence], list[SkippedSentence]] = ([], [])  # a warning line each
    train_file = read_treebank(args.treebank, limit=args.limit, on_skip=warn_skipped(not_trees[0]))
    n_train = count_items(train_file, "training sentences")  # both files checked before the model loads
    n_eval = count_items(
        read_treebank(args.eval, limit=args.eval_limit, on_skip=warn_skipped(not_trees[1])), "evaluation sentences"
    )
    analysis = FeatureAnalysis()
    with job.open() as session:
        train = job.run(
            session,
            analysis,
            lambda: read_treebank(args.treebank, limit=args.limit, on_skip=_quiet),
            {"treebank": args.treebank},
            n_train,
            part="train",
        )
        dev = job.run(
            session,
            analysis,
            lambda: read_treebank(args.eval, limit=args.eval_limit, on_skip=_quiet),
            {"eval": args.eval},
            n_eval,
            part="eval",
        )
        model = session.model
    result = train_probes(
        model.name,
        train.features(),
        train.skipped,
        dev.features(),
        dev.skipped,
        epochs=args.epochs,
        seed=args.seed,
        lr=args.lr,
    )
    settings = {
        "limit": args.limit,
        "eval_limit": args.eval_limit,
        "epochs": args.epochs,
        "seed": args.seed,
        "lr": args.lr,
        "train_batch_sentences": BATCH_SENTENCES,
    }
    out = job.write(train_outputs(model, result, args.treebank, args.eval, settings, not_trees))
    sc = result.scores
    rows = [
        [name, f"{sc[key]['uas']:.3f}", f"{sc[key]['uas_with_punct']:.3f}"]
        for name, key in (
            ("attention probe", "probe"),
            ("right-branching", "right_branching"),
            ("distance probe", "distance"),
        )
    ]
    _print(text_table(["dev", "UAS", "UAS+punct"], rows))
    _print(
        f"trained on {result.train_sentences} sentences, scored {sc['probe']['words_scored']} words of "
        f"{result.eval_sentences} sentences; model {model.name}; report written to {out.resolve()}/"
    )
    return 0


def _quiet(skipped: Any) -> None:
    """``on_skip`` for the second read of a file: its skipped sentences were reported by the first."""


def _print(text: Any) -> None:
    sys.stdout.write(str(text).rstrip("\n") + "\n")
