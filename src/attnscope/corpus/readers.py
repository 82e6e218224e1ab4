"""Corpus readers for analyses that need only text: plain text, CoNLL-U (``# text``) and JSON lines.

Each reader streams :class:`TextItem` values (never the whole file) and raises
:class:`attnscope.errors.DataFileError` naming the file and line of the first bad input.

- plain text (any other extension): one text per line; blank lines are skipped;
- CoNLL-U (``.conllu``): each sentence's ``# text =`` comment (its words joined by spaces when absent);
- JSON lines (``.jsonl``, ``.ndjson``): one object a line with ``text`` and optional ``text_pair`` (strings).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from attnscope.corpus.protocol import TraceInput
from attnscope.errors import DataFileError
from attnscope.probe.data import json_lines, numbered_lines

FORMATS = ("text", "conllu", "jsonl")


@dataclass(frozen=True)
class TextItem:
    """One corpus text (and optional sentence B), with where it came from (``source``: file:line)."""

    text: str
    text_pair: str | None = None
    source: str = ""

    def inputs(self) -> TraceInput:
        """What to trace for this item."""
        return TraceInput(self.text, self.text_pair)


def corpus_format(path: str | Path) -> str:
    """The format a file's extension names: ``conllu``, ``jsonl`` or ``text``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".conllu":
        return "conllu"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


def read_corpus(path: str | Path, limit: int | None = None, fmt: str | None = None) -> Iterator[TextItem]:
    """Stream the texts of a corpus file (at most ``limit``); ``fmt`` overrides the format the extension names."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"corpus file not found: {p}" if not p.exists() else f"corpus path is not a file: {p}")
    if limit is not None and limit < 1:
        raise DataFileError(f"limit must be at least 1, got {limit}")
    kind = fmt or corpus_format(p)
    if kind not in FORMATS:
        raise DataFileError(f"unknown corpus format {kind!r}; use one of {', '.join(FORMATS)}")
    reader = {"text": _plain, "conllu": _conllu, "jsonl": _jsonl}[kind]
    count = 0
    for item in reader(p):
        yield item
        count += 1
        if limit is not None and count >= limit:
            return
    if count == 0:
        raise DataFileError(f"{p}: no texts found (read as {kind})")


def _lines(p: Path) -> Iterator[tuple[int, str]]:
    for number, line in numbered_lines(p):
        yield number, line.rstrip("\r\n")


def _plain(p: Path) -> Iterator[TextItem]:
    for number, line in _lines(p):
        if line.strip():
            yield TextItem(line.strip(), None, f"{p.name}:{number}")


def _conllu(p: Path) -> Iterator[TextItem]:
    text: str | None = None
    words: list[str] = []
    first = 0
    for number, line in _lines(p):
        stripped = line.strip()
        if not stripped:
            if words or text:
                yield TextItem(text or " ".join(words), None, f"{p.name}:{first}")
            text, words, first = None, [], 0
            continue
        first = first or number
        if stripped.startswith("#"):
            key, _, value = stripped[1:].partition("=")
            if key.strip() == "text" and value.strip():
                text = value.strip()
            continue
        columns = line.split("\t")
        if len(columns) != 10:
            raise DataFileError(f"{p}:{number}: expected 10 tab-separated CoNLL-U columns, found {len(columns)}")
        if columns[0].isdigit():  # syntactic words only: not "3-4" ranges nor "5.1" empty nodes
            words.append(columns[1])
    if words or text:
        yield TextItem(text or " ".join(words), None, f"{p.name}:{first}")


def _jsonl(p: Path) -> Iterator[TextItem]:
    for number, obj in json_lines(p):
        if not isinstance(obj, dict):
            raise DataFileError(f'{p}:{number}: expected a JSON object with "text", got {type(obj).__name__}')
        text, pair = obj.get("text"), obj.get("text_pair")
        if not isinstance(text, str) or not text.strip():
            raise DataFileError(f'{p}:{number}: missing or empty "text"')
        if pair is not None and (not isinstance(pair, str) or not pair.strip()):
            raise DataFileError(f'{p}:{number}: "text_pair" must be a non-empty string when given')
        yield TextItem(text, pair, f"{p.name}:{number}")
