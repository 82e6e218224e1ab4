"""Building a corpus index on the corpus-analysis protocol, with memory bounded by a chunk, not the corpus.

An index is the data itself (every token's vectors), so its partial state cannot hold them. Instead each
:meth:`IndexAnalysis.update` (one chunk of ``batch_size x 8`` texts, wherever it runs: in process or on a
Ray worker of this machine) writes the chunk's vectors and metadata to *spool files* in a work folder
(``--checkpoint DIR/spool``, else a hidden folder beside ``--out``), named by the chunk's first corpus
index; the state holds only those names and counts, keyed by corpus index, so ``merge`` is a dict union
(exact, any order) and a checkpointed state resumes with its spool files. ``finalize`` streams the spool
files in corpus order, one (layer, kind) at a time, into a FAISS index written to disk, and the metadata
into Parquet row group by row group; the finished files are moved into ``--out`` as a whole folder.

Storage: up to :data:`FLAT_LIMIT` tokens, ``IndexFlatIP`` (float32, exact inner product); above it an
8-bit scalar quantiser (``IndexScalarQuantizer`` QT_8bit, per-dimension ranges trained on a strided
sample of at most :data:`TRAIN_SAMPLE` vectors; still an exhaustive scan, so a heads filter stays exact up
to quantisation: recall@10 against exact search is measured in ``benchmarks/index_speed.py`` and tests).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.corpus.protocol import Analysis, FileContent, Finalize, TraceInput
from attnscope.errors import InputError
from attnscope.files import atomic_path, write_atomic
from attnscope.index.vectors import KINDS, TokenVectors, check_layers, model_fingerprint, normalise, token_vectors
from attnscope.probe.data import Sentence

if TYPE_CHECKING:
    from attnscope.corpus.readers import TextItem
    from attnscope.loading import ModelHandle
    from attnscope.traces import ModelInfo

FORMAT_VERSION = 1
SCHEMA_VERSION = 1
FLAT_LIMIT = 50_000  # tokens: above this, 8-bit scalar quantisation (4x smaller, recall@10 >= 0.95 measured)
TRAIN_SAMPLE = 65_536
STORAGES = ("auto", "flat", "sq8")
MANIFEST = "report.json"
TOKENS_FILE, SENTENCES_FILE = "tokens.parquet", "sentences.parquet"


def faiss_file(layer: int, kind: str) -> str:
    """The FAISS file of one layer and kind inside an index folder."""
    return f"layer{layer}.{kind}.faiss"


@dataclass
class SpoolState:
    """The spool files written so far: chunk start -> (file stem, texts, tokens), plus the model and counts."""

    parts: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    model: str = ""  # model fingerprint (every chunk must agree)
    dims: tuple[int, int] = (0, 0)  # (embedding dim, context dim)
    truncated: int = 0

    @property
    def tokens(self) -> int:
        """Tokens spooled (special tokens left out)."""
        return sum(n for _, _, n in self.parts.values())

    @property
    def texts(self) -> int:
        """Texts spooled."""
        return sum(n for _, n, _ in self.parts.values())


class IndexAnalysis(Analysis["TextItem | Sentence", SpoolState]):
    """Per token (specials left out) and chosen layer: output embedding and per-head context vectors, spooled."""

    name = "index"

    def __init__(self, spool: str | Path, layers: Sequence[int] | None = None, truncate: bool = False) -> None:
        self.spool = str(spool)
        self.layers = None if layers is None else tuple(sorted(set(layers)))
        self.truncate = truncate

    def fingerprint(self) -> dict[str, Any]:
        return {"layers": self.layers, "truncate": self.truncate, "format": FORMAT_VERSION}

    def inputs(self, item: TextItem | Sentence) -> TraceInput:
        return TraceInput(item.text) if isinstance(item, Sentence) else item.inputs()

    def new_state(self, info: ModelInfo) -> SpoolState:
        return SpoolState()

    def trace(self, handle: ModelHandle, items: Sequence[TextItem | Sentence], batch_size: int) -> Sequence[Any]:
        """The items' :class:`TokenVectors` (a text too long for the model is an error naming it, unless truncate)."""
        layers = check_layers(handle, self.layers)
        sources = [_source(item) for item in items]
        vectors = token_vectors(
            handle, [self.inputs(i) for i in items], layers, batch_size=batch_size, truncation=self.truncate,
            sources=sources,
        )  # fmt: skip
        fingerprint = _cached_fingerprint(handle)
        for v in vectors:
            v.model = fingerprint
        return vectors

    def update(
        self, state: SpoolState, start: int, items: Sequence[TextItem | Sentence], traces: Sequence[Any]
    ) -> None:
        vectors: Sequence[TokenVectors] = traces
        if not vectors:
            return
        first = vectors[0]
        if state.model and state.model != first.model:
            raise InputError("the spool holds vectors of two different models; delete the checkpoint and start over")
        state.model = first.model
        state.dims = (first.embedding.shape[-1], first.context.shape[-1])
        stem = f"{start:010d}"
        n_tokens = write_spool(Path(self.spool), stem, start, items, vectors)
        state.parts[start] = (stem, len(items), n_tokens)
        state.truncated += sum(1 for v in vectors if v.truncated)

    def merge(self, a: SpoolState, b: SpoolState) -> SpoolState:
        if a.model and b.model and a.model != b.model:
            raise InputError("partial indexes of two different models cannot be merged")
        a.parts.update(b.parts)
        a.model = a.model or b.model
        a.dims = a.dims if a.dims != (0, 0) else b.dims
        a.truncated += b.truncated
        return a

    def finalize(self, state: SpoolState, context: Finalize) -> Mapping[str, FileContent]:
        """The index files, written into ``spool/final`` and handed over as paths (moved into ``--out``)."""
        return write_index(state, Path(self.spool), context, self.layers, str(context.settings.get("storage", "auto")))


_FINGERPRINTS: dict[int, str] = {}


def _cached_fingerprint(handle: ModelHandle) -> str:
    key = id(handle.model)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = model_fingerprint(handle)
    return _FINGERPRINTS[key]


def _source(item: TextItem | Sentence) -> str:
    return f"sentence {item.sent_id}" if isinstance(item, Sentence) else item.source


# -- spool files ------------------------------------------------------------------------------------


def token_rows(item: TextItem | Sentence, vec: TokenVectors) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Indices of the non-special tokens and each one's metadata (token, word; pos/dep/head for CoNLL-U)."""
    tokens = vec.tokens
    keep = np.flatnonzero(~tokens.special)
    rows: list[dict[str, Any]] = []
    if isinstance(item, Sentence):
        from attnscope.probe.words import token_to_word

        word_of = token_to_word(tokens, item.spans)
        for t in keep:
            w = int(word_of[t])
            known = w >= 0
            rows.append({
                "token": tokens.display[t],
                "word": item.words[w] if known else None,
                "pos": (item.upos[w] if w < len(item.upos) else None) if known else None,
                "dep": item.relations[w] if known else None,
                "head": item.heads[w] + 1 if known else None,  # CoNLL-U HEAD: 1-based word ID, 0 = root
            })  # fmt: skip
        return keep, rows
    spans: dict[int, tuple[int, int, int]] = {}
    for t in keep:
        w, seg = int(tokens.word_ids[t]), int(tokens.segment[t])
        s, e = (int(x) for x in tokens.offsets[t])
        if w >= 0 and s >= 0:
            old = spans.get(w)
            spans[w] = (seg, min(s, old[1]) if old else s, max(e, old[2]) if old else e)
    for t in keep:
        found = spans.get(int(tokens.word_ids[t]))
        word = tokens.texts[found[0]][found[1] : found[2]] if found else None
        rows.append({"token": tokens.display[t], "word": word, "pos": None, "dep": None, "head": None})
    return keep, rows


def write_spool(
    folder: Path, stem: str, start: int, items: Sequence[TextItem | Sentence], vectors: Sequence[TokenVectors]
) -> int:
    """Write one chunk's vectors (``stem.embedding.npy``, ``stem.context.npy``: [layers, tokens, dim] float32)
    and metadata (``stem.meta.json``), each atomically; returns the chunk's token count."""
    folder.mkdir(parents=True, exist_ok=True)
    emb, ctx, attends = [], [], []
    tokens: list[dict[str, Any]] = []
    sentences: list[dict[str, Any]] = []
    for i, (item, vec) in enumerate(zip(items, vectors, strict=True)):
        keep, rows = token_rows(item, vec)
        for t, row in zip(keep, rows, strict=True):
            tokens.append({"sentence_index": start + i, "token_index": int(t), **row})
        emb.append(vec.embedding[:, keep])
        ctx.append(vec.context[:, keep])
        attends.append(vec.attends_to[:, keep])
        texts = vec.tokens.texts
        sentences.append({
            "sentence_index": start + i, "text": texts[0], "text_pair": texts[1] if len(texts) > 1 else None,
            "tokens": list(vec.tokens.display), "source": _source(item), "truncated": vec.truncated,
        })  # fmt: skip
    for kind, parts in (("embedding", emb), ("context", ctx), ("attends", attends)):
        _save_npy(folder / f"{stem}.{kind}.npy", np.concatenate(parts, axis=1))
    meta = {"tokens": tokens, "sentences": sentences}
    write_atomic(folder / f"{stem}.meta.json", json.dumps(meta, ensure_ascii=False), "spool file")
    return len(tokens)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, "spool file") as tmp, tmp.open("wb") as f:
        np.save(f, np.ascontiguousarray(array))


def _spool_array(folder: Path, stem: str, kind: str) -> np.ndarray:
    try:
        array: np.ndarray = np.load(folder / f"{stem}.{kind}.npy", mmap_mode="r")
        return array
    except (OSError, ValueError) as err:
        raise InputError(
            f"spool file {folder / stem}.{kind}.npy is missing or unreadable ({err}); start over"
        ) from None


# -- finalize: spool -> FAISS + Parquet ---------------------------------------------------------------


def choose_storage(storage: str, tokens: int) -> str:
    """``flat`` (exact, float32) up to FLAT_LIMIT tokens, else ``sq8``; an explicit choice is kept."""
    if storage not in STORAGES:
        raise InputError(f"--storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "auto":
        return "flat" if tokens <= FLAT_LIMIT else "sq8"
    return storage


def write_index(
    state: SpoolState, spool: Path, context: Finalize, layers: Sequence[int] | None, storage: str
) -> dict[str, FileContent]:
    """Stream the spool into ``spool/final`` (FAISS per layer and kind, Parquet metadata, report.json)."""
    if not state.parts or state.tokens == 0:
        raise InputError("no tokens to index (every text was empty or special tokens only)")
    info = context.model.info
    chosen = tuple(range(info.num_layers)) if layers is None else tuple(layers)
    kind_of_store = choose_storage(storage, state.tokens)
    final = spool / "final"
    final.mkdir(parents=True, exist_ok=True)
    stems = [state.parts[start][0] for start in sorted(state.parts)]
    files: dict[str, FileContent] = {}
    for li, layer in enumerate(chosen):
        for kind in KINDS:
            name = faiss_file(layer, kind)
            _write_faiss(final / name, spool, stems, kind, li, info.num_heads, kind_of_store, state.tokens)
            files[name] = final / name
    _write_parquet(final, spool, stems, chosen)
    files[TOKENS_FILE], files[SENTENCES_FILE] = final / TOKENS_FILE, final / SENTENCES_FILE
    sizes = {name: os.path.getsize(path) for name, path in files.items() if isinstance(path, Path)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "analysis": "index",
        "format_version": FORMAT_VERSION,
        "model": {
            "name": context.model.name, "fingerprint": state.model, "model_type": info.model_type,
            "architecture": info.architecture, "num_layers": info.num_layers, "num_heads": info.num_heads,
            "head_dim": info.head_dim, "hidden_size": state.dims[0], "context_size": state.dims[1],
        },
        "layers": list(chosen),
        "storage": kind_of_store,
        "metric": "inner product of normalised vectors (cosine); context: mean per-head cosine over the heads kept",
        "sentences": state.texts,
        "tokens": state.tokens,
        "truncated": state.truncated,
        "data": {key: str(path) for key, path in context.data.items()},
        "settings": dict(context.settings),
        "files": sizes,
    }  # fmt: skip
    files[MANIFEST] = json.dumps(manifest, indent=1) + "\n"
    return files


def _chunks(spool: Path, stems: Sequence[str], kind: str, layer: int, heads: int) -> Iterator[np.ndarray]:
    for stem in stems:
        arr = _spool_array(spool, stem, kind)
        if arr.shape[1]:
            yield normalise(kind, np.asarray(arr[layer]), heads)


def _write_faiss(
    path: Path, spool: Path, stems: Sequence[str], kind: str, layer: int, heads: int, storage: str, total: int
) -> None:
    import faiss

    dim = int(_spool_array(spool, stems[0], kind).shape[-1])
    index: Any
    if storage == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        stride = max(1, math.ceil(total / TRAIN_SAMPLE))
        sample = np.concatenate([v[::stride] for v in _chunks(spool, stems, kind, layer, heads)])
        index.train(sample)
        del sample
    for vectors in _chunks(spool, stems, kind, layer, heads):
        index.add(vectors)
    with atomic_path(path, "index file") as tmp:
        faiss.write_index(index, str(tmp))


def _write_parquet(final: Path, spool: Path, stems: Sequence[str], layers: Sequence[int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    token_schema = pa.schema(
        [("sentence_index", pa.int32()), ("token_index", pa.int32()), ("token", pa.string()), ("word", pa.string()),
         ("pos", pa.string()), ("dep", pa.string()), ("head", pa.int32())]
        + [(f"attends_to_{layer}", pa.int32()) for layer in layers]
    )  # fmt: skip
    sentence_schema = pa.schema(
        [("sentence_index", pa.int32()), ("text", pa.string()), ("text_pair", pa.string()),
         ("tokens", pa.list_(pa.string())), ("source", pa.string()), ("truncated", pa.bool_())]
    )  # fmt: skip
    with (
        pq.ParquetWriter(final / TOKENS_FILE, token_schema) as tokens_out,
        pq.ParquetWriter(final / SENTENCES_FILE, sentence_schema) as sentences_out,
    ):
        for stem in stems:
            meta = json.loads((spool / f"{stem}.meta.json").read_text(encoding="utf-8"))
            attends = np.asarray(_spool_array(spool, stem, "attends"))
            columns: dict[str, Any] = {
                name: [row[name] for row in meta["tokens"]]
                for name in ("sentence_index", "token_index", "token", "word", "pos", "dep", "head")
            }
            for li, layer in enumerate(layers):
                columns[f"attends_to_{layer}"] = attends[li].astype(np.int32)
            if meta["tokens"]:
                tokens_out.write_table(pa.table(columns, schema=token_schema))
            sentences_out.write_table(pa.Table.from_pylist(meta["sentences"], schema=sentence_schema))


# -- running a build ----------------------------------------------------------------------------------


def read_index_corpus(path: str | Path, limit: int | None = None) -> Iterator[TextItem | Sentence]:
    """The corpus' texts: CoNLL-U as dependency trees (POS/DEP/HEAD kept; non-trees skipped with a warning),
    plain text and JSON lines as texts."""
    from attnscope.corpus.readers import corpus_format, read_corpus
    from attnscope.probe.data import read_treebank

    if corpus_format(path) == "conllu":
        yield from read_treebank(path, limit)
    else:
        yield from read_corpus(path, limit=limit)


def spool_folder(out: Path, checkpoint: Path | None) -> Path:
    """The work folder of a build: inside the checkpoint (kept for resuming), else a hidden folder beside ``out``."""
    if checkpoint is not None:
        return checkpoint / "spool"
    return out.parent / f".{out.name}.spool-{os.getpid()}"


def build_index(
    corpus: str | Path,
    out: str | Path,
    model: Any = None,
    *,
    layers: Sequence[int] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    truncate: bool = False,
    storage: str = "auto",
    engine: Any = None,
) -> Path:
    """Index ``corpus`` with ``model`` (a handle, a name/folder, or None for the embedded model) into folder ``out``
    (replaced as a whole); ``engine``: a LocalEngine (default) or RayEngine. Returns the folder."""
    from attnscope.corpus.driver import count_items, run_analysis
    from attnscope.corpus.engines import LocalEngine, ModelSpec
    from attnscope.corpus.output import check_out_folder, replace_folder

    target = check_out_folder(out)
    choose_storage(storage, 0)
    total = count_items(read_index_corpus(corpus, limit), "texts")
    spool = spool_folder(target, None)
    analysis = IndexAnalysis(spool, layers, truncate)
    spec = ModelSpec(model) if model is None or isinstance(model, str) else model
    settings = {"limit": limit, "batch_size": batch_size, "truncate": truncate, "storage": storage,
                "model": model if isinstance(model, str) else None}  # fmt: skip
    try:
        with (engine or LocalEngine()).open(spec) as session:
            state = run_analysis(analysis, read_index_corpus(corpus, limit), session, batch_size=batch_size,
                                 progress=False, total=total)  # fmt: skip
            files = analysis.finalize(state, Finalize(session.model, {"corpus": Path(corpus)}, settings))
        return replace_folder(target, files)
    finally:
        remove_spool(spool)


def remove_spool(spool: Path) -> None:
    """Delete a build's work folder."""
    import shutil

    shutil.rmtree(spool, ignore_errors=True)
