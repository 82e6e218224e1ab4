"""Corpus index and search: build on an EWT slice, find a token's own context first, heads filter against numpy,
CoNLL-U labels, JSON shapes, the CLI, errors (corrupt, foreign, other model, bad query, too long), Ray = local."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiny_models
from attnscope.cli import main
from attnscope.corpus.protocol import TraceInput
from attnscope.errors import InputError
from attnscope.index import build_index, open_index
from attnscope.index.build import faiss_file, read_index_corpus
from attnscope.index.vectors import token_vectors

SENTENCES = 30
BUSH = 1  # "President Bush on Tuesday nominated two individuals to replace retiring jurists on federal courts ..."


@pytest.fixture(scope="module")
def slice_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SENTENCES sentences of EWT dev as a CoNLL-U file."""
    lines = (shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu").read_text(encoding="utf-8").split("\n")
    out, blanks = [], 0
    for line in lines:
        out.append(line)
        if not line.strip():
            blanks += 1
            if blanks == SENTENCES:
                break
    path = tmp_path_factory.mktemp("ewt") / "slice.conllu"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_index(slice_file: Path, tiny: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(slice_file, tmp_path_factory.mktemp("idx") / "tiny", tiny("bert"), batch_size=4)


def _brute_force(handle: Any, slice_file: Path, layer: int, query: np.ndarray, heads: list[int]) -> np.ndarray:
    """Mean per-head cosine over ``heads`` between ``query`` (raw context [H*d]) and every corpus token, in numpy."""
    items = list(read_index_corpus(slice_file))
    vecs = token_vectors(handle, [TraceInput(i.text) for i in items], [layer])
    corpus = np.concatenate([v.context[0][~v.tokens.special] for v in vecs])
    h = handle.info.num_heads
    c = corpus.reshape(len(corpus), h, -1)[:, heads]
    q = query.reshape(h, -1)[heads]
    cos = (c * q).sum(-1) / np.linalg.norm(c, axis=-1) / np.linalg.norm(q, axis=-1)
    return np.asarray(cos.mean(axis=1))


def test_own_token_first_with_score_one(tiny_index: Path, tiny: Callable[[str], Any], slice_file: Path) -> None:
    index = open_index(tiny_index)
    handle = tiny("bert")
    assert (index.layers, index.heads, index.model) == ((0, 1), 4, "tiny-bert")
    sentences = list(read_index_corpus(slice_file))
    for by in ("context", "embedding"):
        for layer in (0, 1):
            result = index.search(handle, sentences[BUSH].text, token=5, layer=layer, k=5, by=by)
            first = result.matches[0]
            assert (first.sentence_index, first.token_index) == (BUSH, 5)
            assert first.score == pytest.approx(1.0, abs=1e-4)
            assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)


def test_heads_filter_equals_numpy_brute_force(tiny_index: Path, tiny: Callable[[str], Any], slice_file: Path) -> None:
    handle = tiny("bert")
    index = open_index(tiny_index)
    text = "The court nominated two judges on Tuesday ."
    query = token_vectors(handle, [TraceInput(text)], [1])[0].context[0, 3]
    for heads in ([1], [0, 2], [0, 1, 2, 3]):
        result = index.search(handle, text, token=3, layer=1, heads=heads, k=10)
        expected = np.sort(_brute_force(handle, slice_file, 1, query, heads))[::-1][:10]
        assert np.allclose([m.score for m in result.matches], expected, atol=1e-4)
    # the heads filter zeroes the other heads: own token still scores 1 for any subset
    own = index.search(handle, list(read_index_corpus(slice_file))[BUSH].text, token=5, layer=1, heads=[3], k=1)
    assert own.matches[0].score == pytest.approx(1.0, abs=1e-4)


def test_conllu_labels_and_json(tiny_index: Path, tiny: Callable[[str], Any], slice_file: Path) -> None:
    index = open_index(tiny_index)
    text = list(read_index_corpus(slice_file))[BUSH].text
    result = index.search(index_handle := tiny("bert"), text, token=5, layer=0, k=3)
    m = result.matches[0]
    assert (m.token, m.word, m.pos, m.dep, m.head) == ("nominated", "nominated", "VERB", "root", 0)
    jurists = [i for i, t in enumerate(m.tokens) if t in ("jurist", "##s", "s")]
    for t in jurists[:2]:  # "jurists" is two word pieces; both carry the word's labels
        hit = index.search(index_handle, text, token=t, layer=0, k=1).matches[0]
        assert (hit.word, hit.pos, hit.dep, hit.head) == ("jurists", "NOUN", "dobj", 9)
    data = result.to_json()
    assert set(data) == {"query", "matches", "summary"}
    assert data["query"] == {"tokens": list(result.tokens), "token": 5, "layer": 0, "heads": None, "by": "context"}
    assert set(data["matches"][0]) >= {"sentence", "sentence_index", "tokens", "token_index", "token", "score",
                                       "attends_to", "pos", "dep", "head"}  # fmt: skip
    assert sum(data["summary"]["pos"].values()) == 3
    assert 0 <= m.attends_to < len(m.tokens)
    json.dumps(data)  # plain JSON types only


def test_attends_to_is_the_argmax_of_the_selected_heads(tiny_index: Path, tiny: Callable[[str], Any]) -> None:
    from attnscope.tracing import trace

    handle = tiny("bert")
    index = open_index(tiny_index)
    for heads in (None, [2]):
        result = index.search(handle, "Two judges were nominated .", token=4, layer=1, heads=heads, k=4)
        for m in result.matches:
            att = trace(handle, m.sentence).attention["encoder"][1][heads or slice(None)].mean(axis=0)
            assert m.attends_to == int(att[m.token_index].argmax())


def test_sq8_is_smaller_and_scores_alike(slice_file: Path, tiny: Callable[[str], Any], tmp_path: Path) -> None:
    handle = tiny("bert")
    exact = open_index(build_index(slice_file, tmp_path / "flat", handle, layers=[1], storage="flat"))
    approx = open_index(build_index(slice_file, tmp_path / "sq8", handle, layers=[1], storage="sq8"))
    assert (approx.manifest["storage"], exact.manifest["storage"]) == ("sq8", "flat")
    sizes = [(tmp_path / f / faiss_file(1, "context")).stat().st_size for f in ("sq8", "flat")]
    assert sizes[0] < sizes[1] / 3
    # a random tiny model's contexts are near ties, so compare scores, not ranks (recall: the MiniLM test)
    text = list(read_index_corpus(slice_file))[BUSH].text
    for by in ("context", "embedding"):
        a = [m.score for m in approx.search(handle, text, token=5, layer=1, by=by).matches]
        b = [m.score for m in exact.search(handle, text, token=5, layer=1, by=by).matches]
        assert np.allclose(a, b, atol=0.02)


def test_errors(tiny_index: Path, tiny: Callable[[str], Any], wordpiece: Any, tmp_path: Path) -> None:
    from attnscope.loading import ModelHandle

    handle = tiny("bert")
    index = open_index(tiny_index)
    text = "The court nominated two judges ."
    for kwargs, words in (
        ({"token": 99, "layer": 0}, "token must be an index"),
        ({"token": 2, "layer": 7}, "layer 7 is not in index"),
        ({"token": 2, "layer": 0, "heads": [4]}, "heads must be distinct numbers in 0..3"),
        ({"token": 2, "layer": 0, "k": 0}, "k must be a positive"),
        ({"token": 2, "layer": 0, "by": "keys"}, "by must be one of"),
        ({"token": 2, "layer": 0, "by": "embedding", "heads": [1]}, "heads filter applies to context"),
    ):
        with pytest.raises(InputError, match=words):
            index.search(handle, text, **kwargs)
    other = ModelHandle.from_model(tiny_models.build("bert", seed=1), wordpiece, "tiny-bert")
    with pytest.raises(InputError, match="was built with tiny-bert, not with tiny-bert"):
        index.search(other, text, token=2, layer=0)

    with pytest.raises(InputError, match="not found"):
        open_index(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is not an attnscope index"):
        open_index(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "report.json").write_text(json.dumps({"schema_version": 1, "analysis": "heads"}), encoding="utf-8")
    with pytest.raises(InputError, match="another analysis"):
        open_index(foreign)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_index, broken)
    (broken / "report.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="corrupt"):
        open_index(broken)
    shutil.rmtree(broken)
    shutil.copytree(tiny_index, broken)
    faiss_path = broken / faiss_file(1, "context")
    faiss_path.write_bytes(faiss_path.read_bytes()[:100])
    with pytest.raises(InputError, match="incomplete or corrupt"):
        open_index(broken)
    size = faiss_path.stat().st_size
    shutil.copy(tiny_index / faiss_file(1, "context"), faiss_path)
    faiss_path.write_bytes(b"\0" * faiss_path.stat().st_size)  # right size, garbage content
    assert faiss_path.stat().st_size != size
    with pytest.raises(InputError, match="corrupt"):
        open_index(broken).search(handle, text, token=2, layer=1)


def test_too_long_text_is_an_error_and_writes_nothing(tiny: Callable[[str], Any], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("A short line .\n" + "word " * 600 + "\nAnother line .\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"corpus.txt:2: the input is \d+ tokens long"):
        build_index(corpus, out, tiny("bert"))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]  # no spool left behind
    index = open_index(build_index(corpus, out, tiny("bert"), truncate=True))
    assert (index.manifest["truncated"], index.manifest["sentences"]) == (1, 3)
    words = index.search(tiny("bert"), "A short line .", token=2, layer=0, k=1).matches[0]
    assert (words.sentence_index, words.word, words.pos) == (0, "short", None)


def test_cli_index_and_search(slice_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "cli-index"
    model = ["--model", str(tiny_model_dir)]
    assert main(["index", "--corpus", str(slice_file), "--out", str(out), "--layers", "1", "--limit", "12",
                 "--no-progress", "--checkpoint", str(tmp_path / "ck"), *model]) == 0  # fmt: skip
    assert "12 texts" in capsys.readouterr().out
    assert not (tmp_path / "ck").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli-index"]
    text = list(read_index_corpus(slice_file))[BUSH].text
    assert main(["search", str(out), text, "--token", "5", "--layer", "1", "-k", "3", "--json", *model]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [{"sentence", "token_index", "token", "score"}] * 3
    assert (rows[0]["token"], rows[0]["token_index"]) == ("nominated", 5)
    assert main(["search", str(out), text, "--token", "5", "--layer", "1", "--heads", "0,2", *model]) == 0
    assert "VERB/root" in capsys.readouterr().out
    assert main(["search", str(out), text, "--token", "5", "--layer", "0", *model]) == 2
    assert "layer 0 is not in index" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "none"), text, "--token", "1", "--layer", "0", *model]) == 2
    assert main(["index", "--corpus", str(slice_file), "--out", str(out), "--layers", "9", *model]) == 2
    assert "layers must lie in 0..1" in capsys.readouterr().err


@pytest.mark.integration
def test_minilm_own_token_and_sq8_recall(slice_file: Path, minilm: Any, tmp_path: Path) -> None:
    exact = open_index(build_index(slice_file, tmp_path / "flat", minilm, layers=[3, 5], storage="flat"))
    approx = open_index(build_index(slice_file, tmp_path / "sq8", minilm, layers=[3, 5], storage="sq8"))
    sentences = [s for s in read_index_corpus(slice_file) if len(s.words) >= 8]
    text = list(read_index_corpus(slice_file))[BUSH].text
    for layer in (3, 5):
        for by in ("context", "embedding"):
            first = exact.search(minilm, text, token=5, layer=layer, by=by, k=3).matches[0]
            assert (first.sentence_index, first.token_index, first.token) == (BUSH, 5, "nominated")
            assert first.score == pytest.approx(1.0, abs=1e-3)
    found = total = 0
    for s in sentences[:8]:
        for token in (1, 3, 5):
            for by in ("context", "embedding"):
                kw = {"token": token, "layer": 5, "by": by}
                a = {(m.sentence_index, m.token_index) for m in approx.search(minilm, s.text, **kw).matches}
                b = {(m.sentence_index, m.token_index) for m in exact.search(minilm, s.text, **kw).matches}
                found, total = found + len(a & b), total + len(b)
    assert found / total >= 0.95


def test_ray_build_equals_local(cluster: str, tiny_model_dir: Path, slice_file: Path, tmp_path: Path) -> None:
    import faiss

    from attnscope.corpus.ray_engine import RayEngine

    model = str(tiny_model_dir)
    local = build_index(slice_file, tmp_path / "local", model, batch_size=2)
    remote = build_index(slice_file, tmp_path / "ray", model, batch_size=2, engine=RayEngine(workers=2))
    for name in ("tokens.parquet", "sentences.parquet"):
        import pyarrow.parquet as pq

        assert pq.read_table(local / name).equals(pq.read_table(remote / name))
    for layer in (0, 1):
        for kind in ("context", "embedding"):
            a = faiss.read_index(str(local / faiss_file(layer, kind)))
            b = faiss.read_index(str(remote / faiss_file(layer, kind)))
            assert np.array_equal(a.reconstruct_n(0, a.ntotal), b.reconstruct_n(0, b.ntotal))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "ray"]


def test_resume_from_checkpoint_equals_one_pass(slice_file: Path, tiny: Callable[[str], Any], tmp_path: Path) -> None:
    """A state holds spool file names keyed by corpus index: a resumed build (its spool kept in the checkpoint)
    gives the same index as one pass, and merge order does not matter."""
    import pyarrow.parquet as pq

    from attnscope.corpus.checkpoint import Checkpoint
    from attnscope.corpus.driver import run_analysis
    from attnscope.corpus.engines import LocalEngine
    from attnscope.corpus.output import replace_folder
    from attnscope.corpus.protocol import Finalize
    from attnscope.index.build import IndexAnalysis

    handle = tiny("bert")
    items = list(read_index_corpus(slice_file))
    one = build_index(slice_file, tmp_path / "one", handle, batch_size=2)
    analysis = IndexAnalysis(tmp_path / "ck" / "spool")
    checkpoint = Checkpoint(tmp_path / "ck", {"job": "index"}, every=16)
    with LocalEngine().open(handle) as session:
        run_analysis(analysis, items[:16], session, batch_size=2, checkpoint=checkpoint)
        again = Checkpoint(tmp_path / "ck", {"job": "index"}, every=16)
        state = run_analysis(analysis, items, session, batch_size=2, checkpoint=again)
        files = analysis.finalize(state, Finalize(session.model, {"corpus": slice_file}, {"storage": "auto"}))
    assert sorted(state.parts) == [0, 16]
    resumed = replace_folder(tmp_path / "resumed", files)
    assert pq.read_table(one / "tokens.parquet").equals(pq.read_table(resumed / "tokens.parquet"))
    for name in (faiss_file(0, "context"), faiss_file(1, "embedding")):
        assert (one / name).read_bytes() == (resumed / name).read_bytes()
    a, b = analysis.new_state(handle.info), analysis.new_state(handle.info)
    a.parts, b.parts = {0: ("x", 16, 100)}, {16: ("y", 14, 90)}
    assert analysis.merge(a, b).parts == analysis.merge(b, a).parts == {0: ("x", 16, 100), 16: ("y", 14, 90)}


@pytest.mark.parametrize("family", ["gpt2", "llama", "distilbert"])
def test_other_families_find_their_own_token(family: str, tiny: Callable[[str], Any], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"text": "The court nominated two judges on Tuesday ."},
        {"text": "Judges were named .", "text_pair": "Why?"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    handle = tiny(family)
    index = open_index(build_index(corpus, tmp_path / "idx", handle))
    first = index.search(handle, rows[0]["text"], token=3, layer=1, heads=[1, 2], k=2).matches[0]
    assert (first.sentence_index, first.token_index) == (0, 3)
    assert first.score == pytest.approx(1.0, abs=1e-4)
    pair = index._tokens["sentence_index"] == 1  # sentence B's words are aligned in its own text
    words = list(dict.fromkeys(index._tokens["word"][pair]))  # word pieces of one word share it
    assert words == ["Judges", "were", "named", ".", "Why", "?"]


def test_encoder_decoder_models_are_refused(tiny: Callable[[str], Any], slice_file: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="encoder-decoder model; the corpus index supports"):
        build_index(slice_file, tmp_path / "t5", tiny("t5"), limit=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_handle_with_its_lm_head_is_the_same_model(shared_data: Path, slice_file: Path, tmp_path: Path) -> None:
    """The app loads models with their LM head (predictions): an index built with the bare model accepts it."""
    import attnscope

    path = shared_data.parent / "models" / "tiny-bert-mlm-ewt"
    bare, with_head = attnscope.load(str(path), device="cpu"), attnscope.load(str(path), device="cpu", lm_head=True)
    index = open_index(build_index(slice_file, tmp_path / "idx", bare, limit=4, layers=[0]))
    index.check_model(with_head)
    bare_hit = index.search(bare, "Two judges were named .", token=2, layer=0, k=3)
    head_hit = index.search(with_head, "Two judges were named .", token=2, layer=0, k=3)
    assert bare_hit.to_json() == head_hit.to_json()
