"""``attnscope heads`` (the head atlas of a corpus) and ``attnscope find`` (heads ranked by a question)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.errors import DataFileError, InputError

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: SubParsers) -> None:
    """Add ``heads`` and ``find`` to the ``attnscope`` command line."""
    from attnscope.corpus.driver import add_corpus_options
    from attnscope.heads.find import NAMED_PATTERNS

    p = subparsers.add_parser(
        "heads",
        help="what every head does over a corpus: roles, statistics, per-layer shares, head similarity",
        description="The head atlas: for every head of one stack, attention shares (first token, [SEP], "
        "punctuation, itself, previous/next token, best offset), entropy, confidence, distance, Kovaleva "
        "pattern types and a role; per layer the [CLS]/[SEP]/punctuation/other shares; JS distances, map "
        "and clusters. Writes report.json, report.md, PNG figures and index.html (the atlas view) into --out.",
    )
    p.add_argument("--corpus", type=Path, required=True, metavar="FILE", help="text lines, CoNLL-U or JSON lines")
    _stack_and_truncate(p)
    p.add_argument("--max-offset", type=int, default=5, metavar="K", help="offsets -K..K (default 5)")
    p.add_argument(
        "--js-sentences", type=int, default=1000, metavar="N", help="compare heads on the first N texts (0: off)"
    )
    add_corpus_options(p, "heads")
    p.set_defaults(func=_cmd_heads)

    f = subparsers.add_parser(
        "find",
        help="rank heads by a pattern or by example word pairs",
        description="Rank every head by how well its attention matches a pattern (TransformerLens detect_head, "
        "error measure 'mul'), or by its attention from one word to another. Writes report.json, report.md and "
        "a PNG of the scores into --out.",
    )
    f.add_argument("--corpus", type=Path, default=None, metavar="FILE", help="text lines, CoNLL-U or JSON lines")
    ask = f.add_argument_group("question (one of)")
    ask.add_argument("--pattern", default=None, metavar="NAME|FILE", help=f"{'|'.join(NAMED_PATTERNS)} or .npy/.csv")
    ask.add_argument("--from", dest="from_word", default=None, metavar="WORD", help="attention from this word...")
    ask.add_argument("--to", dest="to_word", default=None, metavar="WORD", help="...to this word")
    ask.add_argument("--pairs", type=Path, default=None, metavar="FILE", help='JSON lines {"text", "from", "to"}')
    f.add_argument("--generated", action="store_true", help="score the pattern on random repeated token sequences")
    f.add_argument("--n-sequences", type=int, default=50, metavar="N", help="generated sequences (default 50)")
    f.add_argument("--span", type=int, default=25, metavar="T", help="random tokens per copy (default 25)")
    f.add_argument("--seed", type=int, default=0, help="seed of generated inputs and the bootstrap (default 0)")
    f.add_argument("--exclude-bos", action="store_true", help="zero attention to the first key before scoring")
    f.add_argument("--exclude-current-token", action="store_true", help="zero attention to itself before scoring")
    f.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    _stack_and_truncate(f)
    add_corpus_options(f, "find")
    f.set_defaults(func=_cmd_find)


def _stack_and_truncate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", choices=("encoder", "decoder"), default=None, help="self-attention stack to analyse")
    p.add_argument("--truncate", action="store_true", help="keep texts too long for the model, cut (else skipped)")


def _cmd_heads(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items, payload_function, settings_of
    from attnscope.corpus.protocol import Finalize
    from attnscope.corpus.readers import read_corpus
    from attnscope.heads.analysis import HeadsAnalysis

    if args.max_offset < 1 or args.js_sentences < 0:
        raise InputError("--max-offset must be at least 1 and --js-sentences at least 0")
    job = CorpusJob.from_args(args)
    total = count_items(read_corpus(args.corpus, limit=args.limit), "texts")
    analysis = HeadsAnalysis(args.stack, args.max_offset, args.js_sentences, args.truncate)
    settings = settings_of(args, ("limit", "batch_size", "stack", "max_offset", "js_sentences", "truncate"))
    data = {"corpus": args.corpus}
    with job.open() as session:
        state = job.run(session, analysis, lambda: read_corpus(args.corpus, limit=args.limit), data, total)
        files = analysis.finalize(state, Finalize(session.model, data, settings, payload_function(session)))
    out = job.write(files)
    report = json.loads(files["report.json"])
    print(
        f"{report['sentences']} texts, {report['rows']} query rows, stack {report['stack']}, model {session.model.name}"
    )
    if report["skipped"]:
        print(f"skipped: {report['skipped']['too_long']} texts too long for the model (pass --truncate to keep them)")
    for claim in report["claims"]:
        verdict = {True: "holds", False: "does not hold", None: "n/a"}[claim["holds"]]
        print(f"- {claim['claim']}: {verdict} ({claim['evidence']})")
    print(f"report written to {out.resolve()}/")
    return 0


def _cmd_find(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items, settings_of
    from attnscope.corpus.protocol import Finalize
    from attnscope.corpus.readers import read_corpus
    from attnscope.heads.analysis import PairAnalysis, PatternAnalysis, find_report, items_with_words

    asked = [args.pattern is not None, args.from_word is not None or args.to_word is not None, args.pairs is not None]
    if sum(asked) != 1:
        raise InputError("ask one question: --pattern, --from WORD --to WORD, or --pairs FILE")
    if (args.from_word is None) != (args.to_word is None):
        raise InputError("--from and --to go together")
    if args.generated and args.pattern is None:
        raise InputError("--generated goes with --pattern")
    if args.corpus is None and not args.generated and args.pairs is None:
        raise InputError("give --corpus FILE (or --generated for a pattern)")
    matrix, name = _pattern(args.pattern) if args.pattern is not None else (None, "")
    job = CorpusJob.from_args(args)
    settings = settings_of(args, ("limit", "batch_size", "stack", "seed", "truncate", "exclude_bos",
                                  "exclude_current_token"))  # fmt: skip
    data: dict[str, Path] = {}
    files: Mapping[str, str | bytes]
    if args.generated:
        settings.update(settings_of(args, ("n_sequences", "span")))
        with job.open() as session:
            result = session.call(_generated, name, matrix, args)
            files = find_report(result, "find pattern", Finalize(session.model, data, settings))
    elif args.pattern is not None:
        data["corpus"] = args.corpus
        total = count_items(read_corpus(args.corpus, limit=args.limit), "texts")
        pattern = PatternAnalysis(name, matrix, args.stack, args.exclude_bos, args.exclude_current_token, args.truncate)
        with job.open() as session:
            scores = job.run(session, pattern, lambda: read_corpus(args.corpus, limit=args.limit), data, total)
            files = pattern.finalize(scores, Finalize(session.model, data, settings))
    else:
        if args.pairs is not None:
            data["pairs"] = args.pairs
            query: dict[str, Any] = {"pairs": str(args.pairs)}

            def read() -> Iterator[Any]:
                return _read_pairs(args.pairs, args.limit)
        else:
            data["corpus"] = args.corpus
            query = {"from": args.from_word, "to": args.to_word}

            def read() -> Iterator[Any]:
                return items_with_words(read_corpus(args.corpus, limit=args.limit), args.from_word, args.to_word)

        if not any(True for _ in read()):
            what = (
                f"no text holds both {args.from_word!r} and {args.to_word!r} (whole words)"
                if args.pairs is None
                else "no pair"
            )
            raise InputError(f"{what} in {args.corpus or args.pairs}")
        total = count_items(read(), "examples")
        pairs = PairAnalysis(query, args.stack, args.bootstrap, args.seed, args.truncate)
        with job.open() as session:
            state = job.run(session, pairs, read, data, total)
            files = pairs.finalize(state, Finalize(session.model, data, settings))
    out = job.write(files)
    report = json.loads(files["report.json"])
    for row in report["ranking"][:5]:
        extra = f"  ratio {row['ratio']}  95% [{row['ci'][0]}, {row['ci'][1]}]" if "ratio" in row else ""
        print(f"<{row['layer']},{row['head']}>  score {row['score']}{extra}")
    print(f"report written to {out.resolve()}/")
    return 0


def _pattern(value: str) -> tuple[Any, str]:
    from attnscope.heads.find import check_pattern_name, load_pattern

    if value.lower().endswith((".npy", ".csv")):
        return load_pattern(value), Path(value).name
    return None, check_pattern_name(value)


def _generated(handle: Any, name: str, matrix: Any, args: argparse.Namespace) -> Any:
    """Run where the model lives: pattern scores on generated inputs (a FindResult of numpy arrays)."""
    from attnscope.heads.api import find_heads

    return find_heads(
        handle, pattern=matrix if matrix is not None else name, generated=True, n_sequences=args.n_sequences,
        span=args.span, seed=args.seed, stack=args.stack, exclude_bos=args.exclude_bos,
        exclude_current_token=args.exclude_current_token, batch_size=args.batch_size,
    )  # fmt: skip


def _read_pairs(path: Path, limit: int | None) -> Iterator[Any]:
    """PairItems from JSON lines ``{"text", "from": [start, end], "to": [start, end]}`` (errors name the line)."""
    from attnscope.heads.analysis import PairItem
    from attnscope.heads.api import check_pair

    if not path.is_file():
        raise DataFileError(f"pairs file not found: {path}")
    count = 0
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                text, pair = check_pair(json.loads(line), number - 1)
            except (json.JSONDecodeError, InputError) as err:
                raise DataFileError(f"{path}:{number}: {err}") from None
            yield PairItem(text, (pair,), number)
            count += 1
            if limit is not None and count >= limit:
                return
