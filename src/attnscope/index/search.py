"""Searching a corpus index: the k corpus tokens whose context (or embedding) is nearest to one token's.

:func:`open_index` reads and checks an index folder (report.json, the files it lists, the Parquet
metadata) and refuses a missing, corrupt or foreign one; :meth:`SearchIndex.search` traces the query
text with the model the index was built with (:meth:`SearchIndex.check_model` refuses any other),
builds the query vector (:func:`attnscope.index.vectors.query_vector`: for context vectors the heads not
kept are zeroed, as exBERT does) and asks the layer's FAISS index for the k best inner products.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.corpus.protocol import TraceInput
from attnscope.errors import InputError
from attnscope.index.build import FORMAT_VERSION, MANIFEST, SENTENCES_FILE, TOKENS_FILE, faiss_file
from attnscope.index.vectors import KINDS, model_fingerprint, query_vector, token_vectors

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle


@dataclass(frozen=True)
class Match:
    """One corpus token found: its sentence, position (in the traced token list), score and labels."""

    sentence: str
    sentence_index: int
    tokens: tuple[str, ...]
    token_index: int
    token: str
    score: float
    attends_to: int
    word: str | None
    pos: str | None
    dep: str | None
    head: int | None

    def to_json(self) -> dict[str, Any]:
        """The match as the app's JSON (see :meth:`SearchResult.to_json`)."""
        return {
            "sentence": self.sentence, "sentence_index": self.sentence_index, "tokens": list(self.tokens),
            "token_index": self.token_index, "token": self.token, "score": self.score,
            "attends_to": self.attends_to, "word": self.word, "pos": self.pos, "dep": self.dep, "head": self.head,
        }  # fmt: skip


@dataclass(frozen=True)
class SearchResult:
    """The query (tokens, token, layer, heads, by) and its matches, best first, with their POS/DEP counts."""

    tokens: tuple[str, ...]
    token: int
    layer: int
    heads: tuple[int, ...] | None
    by: str
    matches: tuple[Match, ...]

    def summary(self) -> dict[str, dict[str, int]]:
        """How many matches carry each POS and DEP label (exBERT's histograms); matches without labels left out."""
        return {
            "pos": dict(Counter(m.pos for m in self.matches if m.pos is not None).most_common()),
            "dep": dict(Counter(m.dep for m in self.matches if m.dep is not None).most_common()),
        }

    def to_json(self) -> dict[str, Any]:
        """``{"query": {...}, "matches": [...], "summary": {"pos": {...}, "dep": {...}}}`` (layers, heads 0-based)."""
        return {
            "query": {"tokens": list(self.tokens), "token": self.token, "layer": self.layer,
                      "heads": None if self.heads is None else list(self.heads), "by": self.by},
            "matches": [m.to_json() for m in self.matches],
            "summary": self.summary(),
        }  # fmt: skip


class SearchIndex:
    """An opened index folder: its model, layers and metadata; FAISS files are memory-mapped when first searched."""

    def __init__(self, folder: Path, manifest: dict[str, Any], tokens: dict[str, np.ndarray], sentences: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self._tokens = tokens
        self._sentences = sentences
        self._faiss: dict[tuple[int, str], Any] = {}

    @property
    def name(self) -> str:
        """The folder's name (the app's index name)."""
        return self.folder.name

    @property
    def model(self) -> str:
        """The name of the model the index was built with."""
        return str(self.manifest["model"]["name"])

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers indexed (0-based)."""
        return tuple(int(x) for x in self.manifest["layers"])

    @property
    def heads(self) -> int:
        """Heads per layer of the model."""
        return int(self.manifest["model"]["num_heads"])

    @property
    def size(self) -> int:
        """Tokens in the index."""
        return int(self.manifest["tokens"])

    def check_model(self, handle: ModelHandle) -> None:
        """Raise InputError unless ``handle`` is the model this index was built with (same weights fingerprint)."""
        if model_fingerprint(handle) != self.manifest["model"]["fingerprint"]:
            raise InputError(
                f"index {self.name} was built with {self.model}, not with {handle.name} (the weights differ); "
                f"search it with {self.model} or build an index for {handle.name}"
            )

    def search(
        self,
        handle: ModelHandle,
        text: str,
        *,
        token: int,
        layer: int,
        heads: Sequence[int] | None = None,
        k: int = 10,
        text_pair: str | None = None,
        by: str = "context",
    ) -> SearchResult:
        """The ``k`` corpus tokens nearest to token ``token`` of ``text`` at ``layer``, best first."""
        self.check_model(handle)
        chosen = self._check_query(layer, heads, k, by)
        vec = token_vectors(handle, [TraceInput(text, text_pair)], [layer])[0]
        n = len(vec.tokens)
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < n:
            raise InputError(f"token must be an index into the {n} traced tokens (0..{n - 1}), got {token!r}")
        raw = vec.context if by == "context" else vec.embedding
        query = query_vector(by, raw[0, token], self.heads, chosen)
        scores, rows = self._index(layer, by).search(query[None, :], min(k, self.size))
        hits = [(float(s), int(r)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]
        attends = self._attends(handle, layer, chosen, [r for _, r in hits])
        matches = tuple(self._match(row, score, att) for (score, row), att in zip(hits, attends, strict=True))
        return SearchResult(vec.tokens.display, token, layer, chosen, by, matches)

    # -- helpers ------------------------------------------------------------------------------------

    def _check_query(self, layer: int, heads: Sequence[int] | None, k: int, by: str) -> tuple[int, ...] | None:
        if by not in KINDS:
            raise InputError(f"by must be one of {', '.join(KINDS)}, got {by!r}")
        if isinstance(layer, bool) or not isinstance(layer, int) or layer not in self.layers:
            raise InputError(
                f"layer {layer!r} is not in index {self.name}; it holds layers {list(self.layers)} (0-based)"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive number of matches, got {k!r}")
        if heads is None:
            return None
        chosen = tuple(sorted(set(heads)))
        if not chosen or any(isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < self.heads for h in chosen):
            raise InputError(f"heads must be distinct numbers in 0..{self.heads - 1} (0-based), got {list(heads)}")
        if by == "embedding":
            raise InputError("a heads filter applies to context vectors; search by context, or drop the heads")
        return chosen

    def _index(self, layer: int, kind: str) -> Any:
        key = (layer, kind)
        if key not in self._faiss:
            import faiss

            path = self.folder / faiss_file(layer, kind)
            try:
                index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)  # codes memory-mapped, not copied
            except RuntimeError as err:
                raise InputError(
                    f"index file {path} is corrupt ({str(err).splitlines()[0]}); rebuild the index"
                ) from None
            if index.ntotal != self.size:
                raise InputError(f"index file {path} holds {index.ntotal} vectors, not {self.size}; rebuild the index")
            self._faiss[key] = index
        return self._faiss[key]

    def _attends(self, handle: ModelHandle, layer: int, heads: tuple[int, ...] | None, rows: list[int]) -> list[int]:
        """The token each matched token attends to most in ``layer``: stored (all heads) or recomputed (some heads)."""
        if heads is None or len(heads) == self.heads:
            column = self._tokens[f"attends_to_{layer}"]
            return [int(column[r]) for r in rows]
        from attnscope.tracing import trace

        out = []
        for r in rows:
            s = int(self._tokens["sentence_index"][r])
            text, pair = self._sentences[s][0], self._sentences[s][1]
            tr = trace(handle, text, pair, truncation=True)
            att = next(iter(tr.attention.values()))[layer][list(heads)].mean(axis=0)
            out.append(int(att[int(self._tokens["token_index"][r])].argmax()))
        return out

    def _match(self, row: int, score: float, attends_to: int) -> Match:
        t = self._tokens
        s = int(t["sentence_index"][row])
        text, _, tokens = self._sentences[s]
        head = t["head"][row]
        return Match(
            sentence=text, sentence_index=s, tokens=tuple(tokens), token_index=int(t["token_index"][row]),
            token=str(t["token"][row]), score=round(score, 6), attends_to=attends_to,
            word=_text_or_none(t["word"][row]), pos=_text_or_none(t["pos"][row]), dep=_text_or_none(t["dep"][row]),
            head=None if head is None else int(head),
        )  # fmt: skip


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def open_index(folder: str | Path) -> SearchIndex:
    """Open an index folder made by ``attnscope index``; InputError for a missing, corrupt or foreign folder."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"index folder {path} not found; build one with attnscope index --corpus FILE --out {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except OSError:
        raise InputError(f"{path} is not an attnscope index (no {MANIFEST}); build one with attnscope index") from None
    except ValueError as err:
        raise InputError(f"{path / MANIFEST} is corrupt ({err}); rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("analysis") != "index":
        raise InputError(f"{path} is not an attnscope index ({MANIFEST} is another analysis' report)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path} is an index of format {manifest.get('format_version')!r}; this attnscope reads format "
            f"{FORMAT_VERSION}: rebuild the index"
        )
    try:
        files = {str(k): int(v) for k, v in manifest["files"].items()}
        int(manifest["tokens"]), int(manifest["model"]["num_heads"]), str(manifest["model"]["fingerprint"])
        layers = [int(x) for x in manifest["layers"]]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"{path / MANIFEST} is corrupt (missing or bad {err}); rebuild the index") from None
    expected = {TOKENS_FILE, SENTENCES_FILE} | {faiss_file(layer, kind) for layer in layers for kind in KINDS}
    for name in sorted(expected):
        f = path / name
        if not f.is_file() or name not in files or f.stat().st_size != files[name]:
            raise InputError(f"index {path} is incomplete or corrupt ({name} missing or of the wrong size); rebuild it")
    tokens, sentences = _read_metadata(path, layers)
    if len(tokens["sentence_index"]) != int(manifest["tokens"]):
        raise InputError(f"index {path}: {TOKENS_FILE} does not match {MANIFEST}; rebuild the index")
    return SearchIndex(path, manifest, tokens, sentences)


def _read_metadata(path: Path, layers: Sequence[int]) -> tuple[dict[str, np.ndarray], dict[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    attends = [f"attends_to_{layer}" for layer in layers]
    try:
        table = pq.read_table(path / TOKENS_FILE)
        sent = pq.read_table(path / SENTENCES_FILE, columns=["sentence_index", "text", "text_pair", "tokens"])
        tokens = {
            name: table.column(name).to_numpy(zero_copy_only=False)
            for name in ("sentence_index", "token_index", "token", "word", "pos", "dep", *attends)
        }
        tokens["head"] = np.asarray(table.column("head").to_pylist(), dtype=object)  # nullable: None stays None
    except (pa.ArrowException, OSError, KeyError) as err:
        raise InputError(f"index {path}: metadata is corrupt ({err}); rebuild the index") from None
    sentences = {
        int(i): (str(text), pair, tuple(toks))
        for i, text, pair, toks in zip(
            *(sent.column(c).to_pylist() for c in ("sentence_index", "text", "text_pair", "tokens")), strict=True
        )
    }
    return tokens, sentences
