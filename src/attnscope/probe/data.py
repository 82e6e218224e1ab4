"""Labelled data for probing: dependency trees from CoNLL-U files and coreference items from JSON lines.

Both readers stream (one sentence or item at a time) and raise :class:`DataFileError` naming the file and
line of the first malformed input, so a bad file fails before any result is written.

Coreference format (one JSON object a line; ``start``/``end`` are character offsets into ``text``, end
exclusive; a mention's ``text``, when given, must equal ``text[start:end]``)::

    {"id": "wsc-0", "text": "...", "pronoun": {"text": "they", "start": 63, "end": 67},
     "antecedent": {"start": 0, "end": 19}, "distractor": {"start": 28, "end": 45}}

or, with any number of candidates, ``"candidates": [{...}, {...}, ...], "answer": 0`` (index of the
antecedent) in place of ``antecedent``/``distractor``; ``"distractors": [...]`` (a list) is accepted too.
Candidates are kept in text order, so "first candidate" means the one that appears first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnscope.errors import DataFileError

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


def _lines(p: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines (1-based) of a UTF-8 text file; a decoding error names the line."""
    with p.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFileError(f"{p}:{number}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None


# -- CoNLL-U -------------------------------------------------------------------------------------


def read_treebank(path: str | Path, limit: int | None = None) -> Iterator[Sentence]:
    """Stream the dependency trees of a CoNLL-U file (at most ``limit``), checking each one."""
    from conllu.exceptions import ParseException
    from conllu.parser import DEFAULT_FIELDS, parse_comment_line, parse_line

    p = _open(path, "treebank")
    if limit is not None and limit < 1:
        raise DataFileError(f"limit must be at least 1, got {limit}")
    block: list[tuple[int, dict[str, Any]]] = []
    meta: dict[str, str] = {}
    count = 0
    for number, line in _lines(p):
        stripped = line.strip()
        if not stripped:
            if block:
                yield _sentence(p, block, meta, count)
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
    if block:
        yield _sentence(p, block, meta, count)
        count += 1
    if count == 0:
        raise DataFileError(f"{p}: no sentences found; is this a CoNLL-U file?")


def _sentence(p: Path, block: list[tuple[int, dict[str, Any]]], meta: Mapping[str, str], index: int) -> Sentence:
    """Build one Sentence from its token lines, keeping syntactic words only."""
    words: list[str] = []
    raw_heads: list[tuple[int, int]] = []  # (line, 1-based head)
    relations: list[str] = []
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
    if not words:
        raise DataFileError(f"{p}:{block[0][0]}: sentence has no words (only multiword tokens or empty nodes)")
    heads: list[int] = []
    for (number, head), i in zip(raw_heads, range(len(words)), strict=True):
        if not 0 <= head <= len(words):
            raise DataFileError(f"{p}:{number}: HEAD {head} is outside the sentence (words 1..{len(words)})")
        if head == i + 1:
            raise DataFileError(f"{p}:{number}: word {i + 1} is its own head")
        heads.append(head - 1)
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
    )


# -- coreference JSON lines ----------------------------------------------------------------------


def read_coref(path: str | Path, limit: int | None = None) -> Iterator[CorefItem]:
    """Stream coreference items from a JSON-lines file (format in this module's docstring)."""
    p = _open(path, "coreference")
    if limit is not None and limit < 1:
        raise DataFileError(f"limit must be at least 1, got {limit}")
    count = 0
    for number, line in _lines(p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{p}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
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
        answer = obj.get("answer")
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(mentions):
            raise DataFileError(f'{where}: "answer" must be the index of the antecedent in "candidates"')
    elif "antecedent" in obj:
        others = obj.get("distractors", [obj["distractor"]] if "distractor" in obj else None)
        if not isinstance(others, list):
            raise DataFileError(f'{where}: give "distractor" (a mention) or "distractors" (a list of mentions)')
        mentions = [_mention(where, text, obj["antecedent"], "antecedent")]
        mentions += [_mention(where, text, m, f"distractor {i}") for i, m in enumerate(others)]
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
    )


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
