"""``attnscope index`` (build a corpus index) and ``attnscope search`` (a token's nearest corpus contexts)."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from attnscope.errors import InputError

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: SubParsers) -> None:
    """Add ``index`` and ``search`` to the ``attnscope`` command line."""
    from attnscope.cli import add_model_options, text_argument
    from attnscope.corpus.driver import add_corpus_options
    from attnscope.index.build import STORAGES

    p = subparsers.add_parser(
        "index",
        help="index every token of a corpus (context vectors and embeddings per layer) for search",
        description="For every token of the corpus (special tokens left out) and every chosen layer: its output "
        "embedding and its per-head context vectors (each head's α·v before the output projection), in FAISS, "
        "with token metadata (sentence, position, token, word; POS/DEP/HEAD for CoNLL-U) in Parquet. "
        "Search it with attnscope search.",
    )
    p.add_argument("--corpus", type=Path, required=True, metavar="FILE", help="text lines, CoNLL-U or JSON lines")
    p.add_argument("--layers", default=None, metavar="L,L", help="layers to index, 0-based (default all)")
    p.add_argument(
        "--storage", choices=STORAGES, default="auto",
        help="flat: exact float32; sq8: 8-bit scalar quantised (4x smaller); auto (default): flat up to 50,000 tokens",
    )  # fmt: skip
    p.add_argument("--truncate", action="store_true", help="index texts too long for the model, cut (else an error)")
    add_corpus_options(p, "index")
    p.set_defaults(func=_cmd_index)

    s = subparsers.add_parser(
        "search",
        help="the corpus tokens whose context is nearest to one token of a sentence",
        description="Trace the sentence with the index's model and list the k corpus tokens whose per-head context "
        "vectors (or layer embeddings, --by embedding) are most alike, by cosine similarity; --heads keeps only "
        "those heads (the others zeroed, as exBERT does).",
    )
    s.add_argument("index", type=Path, metavar="DIR", help="an index folder made by attnscope index")
    s.add_argument("text", type=text_argument, help="the sentence")
    s.add_argument("--pair", type=text_argument, default=None, metavar="TEXT", help="sentence B of a pair")
    s.add_argument(
        "--token", type=int, required=True, metavar="N", help="token index in the traced tokens ([CLS] is 0)"
    )
    s.add_argument("--layer", type=int, required=True, metavar="L", help="layer, 0-based")
    s.add_argument("--heads", default=None, metavar="H,H", help="heads to keep, 0-based (default all)")
    s.add_argument("-k", type=int, default=10, help="matches to list (default 10)")
    s.add_argument("--by", choices=("context", "embedding"), default="context", help="vectors to compare")
    s.add_argument("--json", action="store_true", help='print [{"sentence", "token_index", "token", "score"}...]')
    add_model_options(s)
    s.set_defaults(func=_cmd_search)


def _numbers(value: str | None, flag: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{flag} takes comma-separated numbers such as 0,1,2; got {value!r}") from None
    if not out:
        raise InputError(f"{flag} is empty; leave it out to use all")
    return out


def _cmd_index(args: argparse.Namespace) -> int:
    from attnscope.corpus.driver import CorpusJob, count_items, settings_of
    from attnscope.corpus.protocol import Finalize
    from attnscope.index.build import IndexAnalysis, read_index_corpus, remove_spool, spool_folder

    layers = _numbers(args.layers, "--layers")
    job = CorpusJob.from_args(args)
    total = count_items(read_index_corpus(args.corpus, args.limit), "texts")
    spool = spool_folder(args.out, args.checkpoint)
    analysis = IndexAnalysis(spool.resolve(), layers, args.truncate)
    settings = settings_of(args, ("limit", "batch_size", "truncate", "storage", "model"))
    data = {"corpus": args.corpus}
    try:
        with job.open() as session:
            state = job.run(session, analysis, lambda: read_index_corpus(args.corpus, args.limit), data, total)
            files = analysis.finalize(state, Finalize(session.model, data, settings))
        out = job.write(files)
        remove_spool(spool)
        if args.checkpoint is not None:
            with contextlib.suppress(OSError):  # other files in it: leave it
                args.checkpoint.rmdir()
    finally:
        if args.checkpoint is None:
            remove_spool(spool)  # a checkpointed build keeps its spool to resume
    manifest = json.loads(str(files["report.json"]))
    print(f"{manifest['sentences']} texts, {manifest['tokens']} tokens, layers {manifest['layers']}, "
          f"storage {manifest['storage']}, model {session.model.name}")  # fmt: skip
    if manifest["truncated"]:
        print(f"note: {manifest['truncated']} texts were cut to the model's length (--truncate)")
    print(f"index written to {out.resolve()}/")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from attnscope.index.search import open_index
    from attnscope.loading import load
    from attnscope.text import terminal_text

    heads = _numbers(args.heads, "--heads")
    index = open_index(args.index)
    name = args.model if args.model is not None else index.manifest.get("settings", {}).get("model")
    handle = load(name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    result = index.search(handle, args.text, token=args.token, layer=args.layer, heads=heads, k=args.k,
                          text_pair=args.pair, by=args.by)  # fmt: skip
    if args.json:
        rows = [{"sentence": m.sentence, "token_index": m.token_index, "token": m.token, "score": m.score}
                for m in result.matches]  # fmt: skip
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print(f"query: {terminal_text(result.tokens[result.token])!s} (token {result.token}), layer {result.layer}, "
          f"heads {'all' if result.heads is None else ','.join(map(str, result.heads))}, by {result.by}")  # fmt: skip
    for rank, m in enumerate(result.matches, 1):
        shown = " ".join(f"[{t}]" if i == m.token_index else t for i, t in enumerate(m.tokens))
        labels = f" {m.pos}/{m.dep}" if m.pos or m.dep else ""
        print(f"{rank:3}. {m.score:.3f} {terminal_text(m.token)}{terminal_text(labels)}  {terminal_text(shown)}")
    return 0
