"""In-process drivers: :func:`head_roles` and :func:`find_heads` over ``trace_many`` (batched, streamed).

They feed the mergeable partial states of this package one trace at a time, so memory is bounded by a
batch; a corpus driver (local or distributed) can feed the same states instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.heads.atlas import AtlasState, HeadAtlas
from attnscope.heads.find import FindResult, PatternScores, check_pattern_name, load_pattern
from attnscope.heads.pairs import PairScores, overlap, word_pairs
from attnscope.heads.rows import resolve_stack
from attnscope.loading import ModelHandle
from attnscope.traces import Trace


@dataclass
class Corpus:
    """Texts to trace (optionally with pairs) and how many were skipped (blank, or too long)."""

    texts: list[str]
    pairs: list[str | None]
    index: list[int]
    skipped_blank: int = 0
    skipped_long: int = 0


def prepare_corpus(
    handle: ModelHandle, texts: Iterable[str], text_pairs: Iterable[str | None] | None, truncation: bool
) -> Corpus:
    """Drop blank texts and (unless ``truncation``) texts too long for the model, keeping corpus indices."""
    items = list(texts)
    pairs = list(text_pairs) if text_pairs is not None else [None] * len(items)
    if len(pairs) != len(items):
        raise InputError("texts and text_pairs must have the same length")
    out = Corpus([], [], [])
    limit = handle.max_length
    for i, (text, pair) in enumerate(zip(items, pairs, strict=True)):
        if not isinstance(text, str) or not text.strip():
            out.skipped_blank += 1
            continue
        if not truncation and limit is not None and len(handle.tokenizer(text, pair)["input_ids"]) > limit:
            out.skipped_long += 1
            continue
        out.texts.append(text)
        out.pairs.append(pair)
        out.index.append(i)
    if not out.texts:
        why = f" ({out.skipped_long} too long for {handle.name}; pass truncation=True)" if out.skipped_long else ""
        raise InputError(f"the corpus has no text to analyse{why}")
    return out


def _traces(handle: ModelHandle, corpus: Corpus, batch_size: int, truncation: bool) -> Iterator[tuple[int, Trace]]:
    from attnscope.tracing import trace_many

    has_pairs = any(p is not None for p in corpus.pairs)
    targets = corpus.texts if handle.info.is_encoder_decoder else None  # enc-dec: the text is also the target
    traces = trace_many(
        handle,
        corpus.texts,
        text_pairs=corpus.pairs if has_pairs else None,
        targets=targets,
        batch_size=batch_size,
        truncation=truncation,
        progress=False,
    )
    yield from zip(corpus.index, traces, strict=True)


def head_roles(
    model: ModelHandle,
    texts: Iterable[str],
    *,
    text_pairs: Iterable[str | None] | None = None,
    stack: str | None = None,
    batch_size: int = 16,
    truncation: bool = False,
    max_offset: int = 5,
    js_sentences: int = 1000,
    n_clusters: int | None = None,
) -> HeadAtlas:
    """The head atlas of ``model`` over a corpus: per-head statistics, roles, examples, comparisons.

    ``stack`` picks encoder or decoder self-attention (default: the model's first stack). Heads are
    compared on the first ``js_sentences`` sentences (0: no comparison, map or clusters). Blank texts
    and texts too long for the model are skipped (unless ``truncation``) and counted in the result.
    Encoder-decoder models get each text as both source and target.
    """
    state = AtlasState.for_model(model.info, stack, max_offset=max_offset, js_sentences=js_sentences)
    corpus = prepare_corpus(model, texts, text_pairs, truncation)
    for index, tr in _traces(model, corpus, batch_size, truncation):
        state.update(tr, index)
    atlas = state.finalize(n_clusters)
    atlas.skipped = {"blank": corpus.skipped_blank, "too_long": corpus.skipped_long}
    return atlas


def find_heads(
    model: ModelHandle,
    texts: Iterable[str] | None = None,
    *,
    pattern: str | Path | np.ndarray | None = None,
    from_word: str | None = None,
    to_word: str | None = None,
    pairs: Sequence[dict[str, Any]] | None = None,
    generated: bool = False,
    n_sequences: int = 50,
    span: int = 25,
    seed: int = 0,
    stack: str | None = None,
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    batch_size: int = 16,
    truncation: bool = False,
    n_boot: int = 1000,
) -> FindResult:
    """Rank heads by a pattern (name, [Q, K] matrix or .npy/.csv file) or by from->to example pairs.

    Patterns are scored over ``texts`` or, with ``generated=True``, over ``n_sequences`` random
    sequences of ``span`` tokens repeated twice (seeded). Pairs come from ``from_word``/``to_word``
    over ``texts``, or from ``pairs``: dicts ``{"text", "from": [start, end], "to": [start, end]}``.
    """
    chosen = resolve_stack(model.info, stack)
    asked = sum(x is not None for x in (pattern, from_word or to_word, pairs))
    if asked != 1:
        raise InputError("ask one question: a pattern, --from/--to words, or a pairs file")
    n_layers, n_heads = model.info.num_layers, model.info.num_heads
    if pattern is not None:
        return _find_pattern(
            model, texts, pattern, chosen, exclude_bos, exclude_current_token, generated,
            n_sequences, span, seed, batch_size, truncation,
        )  # fmt: skip
    scores = PairScores(n_layers, n_heads, chosen)
    if pairs is not None:
        items = [check_pair(p, i) for i, p in enumerate(pairs)]
        corpus = prepare_corpus(model, [t for t, _ in items], None, truncation)
        wanted = {i: [items[i][1]] for i in corpus.index}
        query: dict[str, Any] = {"pairs": len(items)}
    else:
        if not from_word or not to_word or texts is None:
            raise InputError("--from and --to need each other and a corpus of texts")
        all_texts = list(texts)
        found = {i: word_pairs(t, from_word, to_word) for i, t in enumerate(all_texts) if isinstance(t, str)}
        found = {i: p for i, p in found.items() if p}
        if not found:
            raise InputError(f"no sentence of the corpus holds both {from_word!r} and {to_word!r} (whole words)")
        keep = sorted(found)
        corpus = prepare_corpus(model, [all_texts[i] for i in keep], None, truncation)
        corpus.index = [keep[i] for i in corpus.index]
        wanted = found
        query = {"from": from_word, "to": to_word}
    for index, tr in _traces(model, corpus, batch_size, truncation):
        scores.update(tr, wanted[index], index)
    return scores.finalize(n_boot=n_boot, seed=seed, query=query)


def _span_for(model: ModelHandle, matrix: np.ndarray, seed: int) -> int:
    """The span whose generated input (special tokens + span repeated twice) is as long as ``matrix``."""
    from attnscope.heads.generate import repeated_ids

    n_special = len(repeated_ids(model, 1, 1, 1, seed)[0]) - 1
    size = matrix.shape[0]
    if matrix.shape[0] != matrix.shape[1] or (size - n_special) < 2 or (size - n_special) % 2:
        raise InputError(
            f"the pattern is {matrix.shape[0]}x{matrix.shape[1]}; generated inputs are {n_special} special token(s) "
            f"plus a random span repeated twice, so the pattern must be square with a size of {n_special} + 2 x span"
        )
    return int(size - n_special) // 2


def check_pair(item: Any, i: int) -> tuple[str, tuple[tuple[int, int], tuple[int, int]]]:
    where = f"pair {i + 1}"
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise InputError(f"{where}: expected an object with a 'text' string and 'from'/'to' [start, end] spans")
    text = item["text"]
    spans = []
    for key in ("from", "to"):
        span = item.get(key)
        if not (isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(x, int) for x in span)):
            raise InputError(f"{where}: '{key}' must be [start, end] character offsets")
        start, end = span
        if not 0 <= start < end <= len(text):
            raise InputError(f"{where}: '{key}' span {list(span)} is outside the text of {len(text)} characters")
        spans.append((start, end))
    if overlap(spans[0], spans[1]):
        raise InputError(f"{where}: the 'from' and 'to' spans overlap; they must be two different words")
    return text, (spans[0], spans[1])


def _find_pattern(
    model: ModelHandle,
    texts: Iterable[str] | None,
    pattern: str | Path | np.ndarray,
    stack: str,
    exclude_bos: bool,
    exclude_current_token: bool,
    generated: bool,
    n_sequences: int,
    span: int,
    seed: int,
    batch_size: int,
    truncation: bool,
) -> FindResult:
    from attnscope.heads.find import check_pattern

    matrix = None
    name = str(pattern) if not isinstance(pattern, np.ndarray) else "matrix"
    if isinstance(pattern, np.ndarray):
        matrix = check_pattern(np.asarray(pattern, dtype=np.float64))
    elif isinstance(pattern, Path) or str(pattern).lower().endswith((".npy", ".csv")):
        matrix = load_pattern(pattern)
    else:
        check_pattern_name(name)  # unknown names fail here, before any tracing
    scores = PatternScores(
        model.info.num_layers, model.info.num_heads, stack, name, matrix,
        exclude_bos=exclude_bos, exclude_current_token=exclude_current_token,
    )  # fmt: skip
    if generated:
        from attnscope.heads.generate import repeated_ids, trace_ids

        if matrix is not None:
            span = _span_for(model, matrix, seed)
        sequences = repeated_ids(model, n_sequences, span, 2, seed)
        for i, tr in enumerate(trace_ids(model, sequences, batch_size)):
            scores.update(tr, i)
        result = scores.finalize()
        result.query.update({"inputs": "generated", "n_sequences": n_sequences, "span": span, "seed": seed})
        return result
    if texts is None:
        raise InputError("pattern scores need a corpus of texts, or generated=True")
    corpus = prepare_corpus(model, texts, None, truncation)
    for index, tr in _traces(model, corpus, batch_size, truncation):
        scores.update(tr, index)
    result = scores.finalize()
    result.query["inputs"] = "corpus"
    return result
