"""Labelled data for probing: dependency trees from CoNLL-U files and coreference items from JSON lines.

Both readers stream (one sentence or item at a time) and raise :class:`DataFileError` naming the file and
line of the first malformed input, so a bad file fails before any result is written.

A CoNLL-U sentence whose lines are well-formed but whose arcs are not one tree (no root, two or more
roots, a cycle) is skipped, not fatal: :func:`read_treebank` reports each one as a
:class:`SkippedSentence` (file, line, sentence id, reason) to its ``on_skip`` callback, or, without one,
as a :class:`TreebankWarning`. Collect them for the report with ``on_skip=skipped.append``.

Coreference format (one JSON object a line; ``start``/``end`` are character offsets into ``text``, end
exclusive; a mention's ``text``, when given, must equal ``text[start:end]``)::

    {"id": "wsc-0", "text": "...", "pronoun": {"text": "they", "start": 63, "end": 67},
     "antecedent": {"start": 0, "end": 19}, "distractor": {"start": 28, "end": 45}}

or, with any number of candidates, ``"candidates": [{...}, {...}, ...], "answer": 0`` (index of the
antecedent) in place of ``antecedent``/``distractor``; ``"distractors": [...]`` (a list) is accepted too.
Candidates are kept in text order, so "first candidate" means the one that appears first. A candidate may
name its head word: ``"head": {"start": 4, "end": 10}`` (character offsets inside the mention); without
one, the head is the mention's last word.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnscope.errors import DataFileError
from attnscope.text import terminal_text

Span = tuple[int, int]


@dataclass(frozen=True)
class Sentence:
    """One dependency tree over syntactic words (multiword-token lines and empty nodes left out).

    ``heads`` are 0-based word indices (-1 for the root); ``relations`` are the labels as found in the
    file (``base_relation`` drops a subtype); ``text`` is the words joined by single spaces and
    ``spans`` the [start, end) character span of each word in it.
    """

    words: tuple[str, ...]
    heads: tuple[int, ...]
    relations: tuple[str, ...]
    text: str
    spans: tuple[Span, ...]
    sent_id: str = ""
    upos: tuple[str, ...] = ()  # universal part-of-speech tag of each word ("_" where the file gives none)

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class CorefItem:
    """One pronoun with its candidate mentions (character spans into ``text``, in text order)."""

    id: str
    text: str
    pronoun: Span
    candidates: tuple[Span, ...]
    answer: int
    heads: tuple[Span | None, ...] = ()  # per candidate, its head word's span if the data gives one


@dataclass(frozen=True)
class SkippedSentence:
    """A CoNLL-U sentence left out because its arcs do not form one tree; ``line`` is its first word's line."""

    file: str
    line: int
    sent_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: skipped sentence {self.sent_id}: {self.reason}"


class TreebankWarning(UserWarning):
    """A treebank sentence was skipped (see :class:`SkippedSentence`)."""


class _NotATreeError(Exception):
    """Raised by :func:`_sentence` for a sentence that is well-formed but not one tree."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def warn_skipped(into: list[SkippedSentence]) -> Callable[[SkippedSentence], None]:
    """An ``on_skip`` for command lines: keep each skipped sentence in ``into`` and print one warning line."""

    def on_skip(item: SkippedSentence) -> None:
        into.append(item)
        sys.stderr.write(f"attnscope: warning: {terminal_text(item)}\n")

    return on_skip


def base_relation(label: str) -> str:
    """The universal part of a relation label: ``"nmod:poss"`` -> ``"nmod"``."""
    return label.split(":", 1)[0]


def _open(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{what} file not found: {p}")
    if not p.is_file():
        raise DataFileError(f"{what} path is not a file: {p}")
    return p


def numbered_lines(p: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines (1-based, line ends kept) of a UTF-8 text file; a decoding error names the line."""
    with p.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFileError(f"{p}:{number}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None


def json_lines(p: Path) -> Iterator[tuple[int, Any]]:
    """Numbered JSON values of a JSON-lines file, blank lines skipped; a bad line names file:line."""
    for number, line in numbered_lines(p):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{p}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None


# -- CoNLL-U -------------------------------------------------------------------------------------


def read_treebank(
    path: str | Path, limit: int | None = None, *, on_skip: Callable[[SkippedSentence], object] | None = None
) -> Iterator[Sentence]:
    """Stream the dependency trees of a CoNLL-U file (at most ``limit``), checking each one.

    A sentence that is not one tree (no root, several roots, a cycle) is skipped and passed to ``on_skip``
    (default: a :class:`TreebankWarning`); it does not count toward ``limit``.
    """
    from conllu.exceptions import ParseException
    from conllu.parser import DEFAULT_FIELDS, parse_comment_line, parse_line

    p = _open(path, "treebank")
    if limit is not None and limit < 1:
        raise DataFileError(f"limit must be at least 1, got {limit}")
    block: list[tuple[int, dict[str, Any]]] = []
    meta: dict[str, str] = {}
    count = skipped = 0

    def build() -> Sentence | None:
        nonlocal skipped
        try:
            return _sentence(p, block, meta, count + skipped)
        except _NotATreeError as err:
            skipped += 1
            sent_id = str(meta.get("sent_id", f"sentence-{count + skipped}"))
            item = SkippedSentence(str(p), err.line, sent_id, err.reason)
            if on_skip is None:
                warnings.warn(str(item), TreebankWarning, stacklevel=3)
            else:
                on_skip(item)
            return None

    for number, line in numbered_lines(p):
        stripped = line.strip()
        if not stripped:
            if block and (sentence := build()) is not None:
                yield sentence
                count += 1
                if limit is not None and count >= limit:
                    return
            block, meta = [], {}
            continue
        if stripped.startswith("#"):
            if block:
                raise DataFileError(
                    f"{p}:{number}: comment line inside a sentence; sentences are separated by a blank line"
                )
            for key, value in parse_comment_line(stripped):
                if value is not None:
                    meta[key] = value
            continue
        columns = line.rstrip("\r\n").split("\t")
        if len(columns) != 10:
            raise DataFileError(
                f"{p}:{number}: expected 10 tab-separated CoNLL-U columns, found {len(columns)}: {stripped[:60]!r}"
            )
        try:
            token = dict(parse_line(line.rstrip("\r\n"), DEFAULT_FIELDS))
        except ParseException as err:
            raise DataFileError(f"{p}:{number}: {err}") from None
        block.append((number, token))
    if block and (sentence := build()) is not None:
        yield sentence
        count += 1
    if count == 0 and skipped:
        raise DataFileError(f"{p}: no usable sentences: all {skipped} were skipped (not one tree each)")
    if count == 0:
        raise DataFileError(f"{p}: no sentences found; is this a CoNLL-U file?")


def _sentence(p: Path, block: list[tuple[int, dict[str, Any]]], meta: Mapping[str, str], index: int) -> Sentence:
    """Build one Sentence from its token lines, keeping syntactic words only."""
    words: list[str] = []
    raw_heads: list[tuple[int, int]] = []  # (line, 1-based head)
    relations: list[str] = []
    upos: list[str] = []
    for number, token in block:
        tid = token["id"]
        if isinstance(tid, tuple):  # "3-4" multiword token or "5.1" empty node: not a syntactic word
            continue
        if tid != len(words) + 1:
            raise DataFileError(f"{p}:{number}: word ID {tid} out of order; expected {len(words) + 1}")
        head, rel, form = token.get("head"), token.get("deprel"), token.get("form")
        if head is None:
            raise DataFileError(f"{p}:{number}: word {tid} has no HEAD; probing needs a head for every word")
        if not rel or rel == "_":
            raise DataFileError(f"{p}:{number}: word {tid} has no DEPREL")
        if not form:
            raise DataFileError(f"{p}:{number}: word {tid} has an empty FORM")
        words.append(str(form))
        raw_heads.append((number, int(head)))
        relations.append(str(rel))
        upos.append(str(token.get("upos") or "_"))
    if not words:
        raise DataFileError(f"{p}:{block[0][0]}: sentence has no words (only multiword tokens or empty nodes)")
    heads: list[int] = []
    for (number, head), i in zip(raw_heads, range(len(words)), strict=True):
        if not 0 <= head <= len(words):
            raise DataFileError(f"{p}:{number}: HEAD {head} is outside the sentence (words 1..{len(words)})")
        if head == i + 1:
            raise DataFileError(f"{p}:{number}: word {i + 1} is its own head")
        heads.append(head - 1)
    _check_tree(heads, [number for number, _ in raw_heads])
    spans: list[Span] = []
    pos = 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return Sentence(
        words=tuple(words),
        heads=tuple(heads),
        relations=tuple(relations),
        text=" ".join(words),
        spans=tuple(spans),
        sent_id=str(meta.get("sent_id", f"sentence-{index + 1}")),
        upos=tuple(upos),
    )


def _check_tree(heads: list[int], lines: list[int]) -> None:
    """Raise :class:`_NotATreeError` unless exactly one word is the root and every word reaches it."""
    roots = [i for i, h in enumerate(heads) if h < 0]
    if not roots:
        raise _NotATreeError(lines[0], "no root (no word has HEAD 0)")
    if len(roots) > 1:
        words = ", ".join(str(i + 1) for i in roots)
        raise _NotATreeError(lines[roots[1]], f"{len(roots)} roots (words {words} have HEAD 0)")
    state = [0] * len(heads)  # 0 unvisited, 1 on the current path, 2 reaches the root
    for start in range(len(heads)):
        path: list[int] = []
        node = start
        while node >= 0 and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = heads[node]
        if node >= 0 and state[node] == 1:  # came back to a word on this path
            cycle = path[path.index(node) :]
            words = " -> ".join(str(i + 1) for i in [*cycle, node])
            raise _NotATreeError(lines[min(cycle)], f"a cycle (words {words}) never reaches the root")
        for visited in path:
            state[visited] = 2


# -- coreference JSON lines ----------------------------------------------------------------------


def read_coref(path: str | Path, limit: int | None = None) -> Iterator[CorefItem]:
    """Stream coreference items from a JSON-lines file (format in this module's docstring)."""
    p = _open(path, "coreference")
    if limit is not None and limit < 1:
        raise DataFileError(f"limit must be at least 1, got {limit}")
    count = 0
    for number, obj in json_lines(p):
        yield _coref_item(p, number, obj)
        count += 1
        if limit is not None and count >= limit:
            return
    if count == 0:
        raise DataFileError(f"{p}: no items found; expected one JSON object a line")


def _coref_item(p: Path, number: int, obj: Any) -> CorefItem:
    where = f"{p}:{number}"
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataFileError(f'{where}: missing or empty "text"')
    pronoun = _mention(where, text, obj.get("pronoun"), "pronoun")
    if "candidates" in obj:
        raw = obj["candidates"]
        if not isinstance(raw, list):
            raise DataFileError(f'{where}: "candidates" must be a list of mentions')
        mentions = [_mention(where, text, m, f"candidates[{i}]") for i, m in enumerate(raw)]
        heads = [_head(where, text, m, mentions[i], f"candidates[{i}]") for i, m in enumerate(raw)]
        answer = obj.get("answer")
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(mentions):
            raise DataFileError(f'{where}: "answer" must be the index of the antecedent in "candidates"')
    elif "antecedent" in obj:
        others = obj.get("distractors", [obj["distractor"]] if "distractor" in obj else None)
        if not isinstance(others, list):
            raise DataFileError(f'{where}: give "distractor" (a mention) or "distractors" (a list of mentions)')
        raw = [obj["antecedent"], *others]
        names = ["antecedent", *(f"distractor {i}" for i in range(len(others)))]
        mentions = [_mention(where, text, m, name) for m, name in zip(raw, names, strict=True)]
        heads = [_head(where, text, m, span, name) for m, span, name in zip(raw, mentions, names, strict=True)]
        answer = 0
    else:
        raise DataFileError(f'{where}: give "antecedent" and "distractor", or "candidates" and "answer"')
    if len(mentions) < 2:
        raise DataFileError(f"{where}: need at least two candidate mentions, found {len(mentions)}")
    if len(set(mentions)) != len(mentions):
        raise DataFileError(f"{where}: two candidate mentions have the same span")
    for m in mentions:
        if m[0] < pronoun[1] and pronoun[0] < m[1]:
            raise DataFileError(f"{where}: candidate {text[m[0] : m[1]]!r} overlaps the pronoun")
    order = sorted(range(len(mentions)), key=lambda i: mentions[i])
    item_id = obj.get("id", f"line-{number}")
    return CorefItem(
        id=str(item_id),
        text=text,
        pronoun=pronoun,
        candidates=tuple(mentions[i] for i in order),
        answer=order.index(answer),
        heads=tuple(heads[i] for i in order) if any(h is not None for h in heads) else (),
    )


def _head(where: str, text: str, m: Any, mention: Span, what: str) -> Span | None:
    """A mention's optional ``head`` span, which must lie inside the mention."""
    if not isinstance(m, dict) or m.get("head") is None:
        return None
    head = _mention(where, text, m["head"], f"{what}'s head")
    if not (mention[0] <= head[0] and head[1] <= mention[1]):
        raise DataFileError(f"{where}: {what}'s head [{head[0]}, {head[1]}) is not inside the mention")
    return head


def _mention(where: str, text: str, m: Any, what: str) -> Span:
    if not isinstance(m, dict):
        raise DataFileError(f'{where}: {what} must be an object with "start" and "end"')
    start, end = m.get("start"), m.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise DataFileError(f'{where}: {what} needs integer "start" and "end" character offsets')
    if not 0 <= start < end <= len(text):
        raise DataFileError(f"{where}: {what} span [{start}, {end}) is not inside the text (length {len(text)})")
    given = m.get("text")
    if given is not None and text[start:end] != given:
        raise DataFileError(f"{where}: {what} says {given!r} but text[{start}:{end}] is {text[start:end]!r}")
    return (start, end)
