"""probe deps: counts on hand-made trees whose answers are known by construction, report files, the real CLI."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.corpus.output import replace_folder
from attnscope.errors import InputError
from attnscope.probe.data import Sentence
from attnscope.probe.deps import ALL, DepsCounts
from attnscope.probe.report import SCHEMA_VERSION, report_header, to_json
from attnscope.traces import ModelInfo


def _sentence(words: str, heads: list[int], relations: str) -> Sentence:
    ws = tuple(words.split())
    spans, pos = [], 0
    for w in ws:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return Sentence(ws, tuple(heads), tuple(relations.split()), " ".join(ws), tuple(spans))


# Hand-made trees (0-based heads, -1 root). No last word is attached to word 0, so "+1, wrapping to word 0" in
# the fake attention below is right exactly when the +1 baseline is.
TREES = [
    _sentence("the cat sat on the mat .", [1, 2, -1, 5, 5, 2, 2], "det nsubj root case det nmod punct"),
    _sentence("a dog barked loudly", [1, 2, -1, 2], "det nsubj root advmod"),
    _sentence("she gave the big dog a bone", [1, -1, 4, 4, 1, 6, 1], "nsubj root det amod iobj det dobj"),
    _sentence("dogs bark", [1, -1], "nsubj root"),
]


def _onehot(targets: list[int], n: int) -> np.ndarray:
    att = np.full((n, n), 0.01 / n, dtype=np.float32)
    for i, t in enumerate(targets):
        if t >= 0:
            att[i, t] += 1.0
    return att / att.sum(-1, keepdims=True)


def _fake(sentence: Sentence, rng: np.random.Generator) -> np.ndarray:
    """[2 layers, 3 heads, W, W]: head 0-0 points at the gold head, 0-1 at the next word, the rest random."""
    n = len(sentence)
    att = rng.random((2, 3, n, n)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    att[0, 0] = _onehot([h if h >= 0 else (i + 1) % n for i, h in enumerate(sentence.heads)], n)
    att[0, 1] = _onehot([(i + 1) % n for i in range(n)], n)
    # 1-0: each head word spreads its attention over its dependents (the head->dependent direction)
    reverse = np.full((n, n), 0.01 / n, dtype=np.float32)
    for d, h in enumerate(sentence.heads):
        if h >= 0:
            reverse[h, d] = 1.0
    att[1, 0] = reverse / reverse.sum(-1, keepdims=True)
    return att


def _counts() -> DepsCounts:
    rng = np.random.default_rng(0)
    counts = DepsCounts(2, 3, max_offset=3)
    for s in TREES:
        counts.add(s, _fake(s, rng))
    return counts


def test_attention_at_the_head_scores_100_percent() -> None:
    counts = _counts()
    for result in counts.results():
        assert result.accuracy[0, 0, 0] == 1.0, result.label
        assert result.best == (0, 0, 0)
        assert result.best_accuracy == 1.0
    every = counts.relation(ALL)
    assert every.count == sum(len(s) - 1 for s in TREES) - 1  # every arc but the root and one punct
    assert counts.relation("det").count == 5


def test_attention_at_plus_one_equals_the_plus_one_baseline() -> None:
    counts = _counts()
    for result in counts.results():
        plus_one = result.offset_accuracy[result.max_offset + 1]
        assert result.accuracy[0, 0, 1] == pytest.approx(plus_one), result.label
    det = counts.relation("det")
    assert det.baseline_offset == 1
    assert det.baseline_accuracy == pytest.approx(4 / 5)  # "the mat": head two to the right
    assert counts.relation("dobj").baseline_accuracy == 0.0  # its head is 5 words left, beyond max_offset=3
    wide = DepsCounts(1, 1, max_offset=5)
    wide.add(TREES[2], np.full((1, 1, 7, 7), 1 / 7, dtype=np.float32))
    assert wide.relation("dobj").baseline_offset == -5


def test_head_to_dependent_direction() -> None:
    counts = _counts()
    for result in counts.results():
        assert result.accuracy[1, 1, 0] == 1.0, result.label
    assert counts.relation("dobj").to_json()["per_head"]["head->dependent"][1][0] == 1.0


def test_report_entry_shape() -> None:
    entry = _counts().relation("det").to_json()
    assert entry["best_head"] == [0, 0]
    assert entry["direction"] == "dependent->head"
    assert entry["accuracy"] == 1.0
    assert entry["baseline_offset"] == 1
    assert entry["margin"] == pytest.approx(0.2)
    assert np.array(entry["per_head"]["dependent->head"]).shape == (2, 3)


def test_unaligned_words_are_skipped_and_shapes_checked() -> None:
    counts = DepsCounts(1, 1)
    s = TREES[1]
    att = np.full((1, 1, 4, 4), 0.25, dtype=np.float32)
    counts.add(s, att, aligned=np.array([True, False, True, True]))
    assert counts.skipped_arcs == 2  # "a" has no token; "dog" (head of "a", dependent of "barked") neither
    assert counts.relation(ALL).count == 1
    with pytest.raises(InputError, match="does not fit"):
        counts.add(s, np.ones((1, 1, 3, 3), dtype=np.float32))
    with pytest.raises(InputError, match="no arcs with relation"):
        counts.relation("xcomp")


def test_base_labels_merge_subtypes() -> None:
    s = _sentence("Bill 's dog barked", [2, 0, 3, -1], "nmod:poss case nsubj root")
    merged = DepsCounts(1, 1, base_labels=True)
    merged.add(s, np.full((1, 1, 4, 4), 0.25, dtype=np.float32))
    assert "nmod" in merged.labels
    assert "nmod:poss" not in merged.labels


def test_output_folder_is_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(TypeError):
        replace_folder(out, {"a.txt": "fine", "b.txt": 3})  # type: ignore[dict-item]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="relative path"):
        replace_folder(out, {"../escape.txt": "x"})
    replace_folder(out, {"a.txt": "x", "sub/b.bin": b"\x00"})
    assert (out / "a.txt").read_text() == "x"
    assert (out / "sub" / "b.bin").read_bytes() == b"\x00"
    with pytest.raises(InputError, match="schema_version"):
        to_json({"analysis": "x"})
    info = ModelInfo("m", num_layers=1, num_heads=2)
    header = report_header("deps", info, out / "a.txt", sentences=3)
    assert header["schema_version"] == SCHEMA_VERSION
    assert header["data"]["sentences"] == 3
    assert len(header["data"]["sha256"]) == 64


@pytest.fixture(scope="module")
def deps_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`attnscope probe deps` on the first 40 EWT dev sentences with MiniLM: (output folder, stdout)."""
    out = tmp_path_factory.mktemp("probe") / "deps"
    treebank = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            ["probe", "deps", "--treebank", str(treebank), "--limit", "40", "--out", str(out), "--device", "cpu"]
        )
    assert code == 0
    return out, buf.getvalue()


@pytest.mark.integration
def test_cli_on_ewt_dev(deps_run: tuple[Path, str]) -> None:
    out, printed = deps_run
    assert "all relations" in printed
    assert "best head" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["analysis"] == "deps"
    assert report["data"]["sentences"] == 40
    assert report["model"]["num_layers"] == 6
    det = report["relations"]["det"]
    assert set(det) >= {"count", "best_head", "direction", "accuracy", "baseline_offset", "baseline_accuracy"}
    assert 0 <= det["best_head"][0] < 6
    assert 0 <= det["best_head"][1] < 12
    for entry in [*report["relations"].values(), report["all_relations"]]:
        assert 0.0 <= entry["baseline_accuracy"] <= entry["accuracy"] + 1.0
        assert 0.0 <= entry["accuracy"] <= 1.0
    assert det["accuracy"] > det["baseline_accuracy"]  # a determiner head beats "the next word" even on 40 sentences
    assert 0 < report["special_share"]["mean"] < 1
    assert (out / "heatmaps" / "det.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "heatmaps" / "all.png").is_file()
    md = (out / "report.md").read_text()
    assert "| det |" in md
    page = (out / "index.html").read_text()
    assert "http://" not in page
    assert "https://" not in page


def test_cli_malformed_treebank_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n2\tB\tb\tNOUN\tNN\t_\t7\tdep\t_\t_\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["probe", "deps", "--treebank", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err
    assert err.startswith("attnscope: error:")
    assert not out.exists()


@pytest.mark.integration
@pytest.mark.browser
def test_page_opens_head_view_on_click(deps_run: tuple[Path, str], browser: Any) -> None:
    out, _ = deps_run
    page = browser.new_page()
    try:
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri())
        image = page.locator("section#rel-det img")
        image.scroll_into_view_if_needed()
        box = image.bounding_box()
        assert box is not None
        coords = page.locator("section#rel-det area[data-layer='2'][data-head='8']").get_attribute("coords")
        assert coords is not None
        x0, y0, x1, y1 = (int(v) for v in coords.split(","))
        page.mouse.click(box["x"] + (x0 + x1) / 2, box["y"] + (y0 + y1) / 2)
        root = page.locator("#as-viewer .attnscope-root[data-attnscope-state=ready]")
        root.wait_for(state="attached", timeout=15000)
        assert (root.get_attribute("data-layer"), root.get_attribute("data-head")) == ("2", "8")
        assert page.locator("#as-viewer .as-probe-caption").inner_text().startswith("det (n=")
        assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
        assert errors == []
    finally:
        page.close()


def test_page_escapes_text_from_the_data() -> None:
    from attnscope.probe.page import linked_page, view_bundle
    from attnscope.probe.report import heatmap_image

    if view_bundle() is None:
        pytest.skip("the view bundle is not built (./dev test builds it)")

    evil = '</script><img src=x onerror="alert(1)">'
    png, box = heatmap_image(np.zeros((2, 3)), evil)
    payload = json.dumps({"labels": [evil]}).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    section = {"id": evil, "title": evil, "png": png, "box": box, "grid": [[0.0] * 3] * 2, "example": "e0"}
    page = linked_page(evil, evil, [section], {"e0": (evil, payload)})
    assert "<img src=x" not in page
    assert "</script><img" not in page
    assert page.count("<area ") == 6
    assert "&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_probe_deps_runs_on_decoder_and_encoder_decoder_models(tiny: Any, family: str) -> None:
    from attnscope.probe.deps import probe_deps

    handle = tiny(family)
    counts = probe_deps(handle, TREES, batch_size=2, max_offset=3, progress=False)
    assert counts.sentences == len(TREES)
    assert counts.skipped_arcs == 0
    every = counts.relation(ALL)
    assert every.count == sum(len(s) - 1 for s in TREES) - 1
    assert every.accuracy.shape == (2, handle.info.num_layers, handle.info.num_heads)
    assert ((every.accuracy >= 0) & (every.accuracy <= 1)).all()


def test_cli_refuses_an_out_path_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t.conllu"
    tree.write_text("1\tA\ta\tDET\tDT\t_\t2\tdet\t_\t_\n2\tB\tb\tNOUN\tNN\t_\t0\troot\t_\t_\n", encoding="utf-8")
    out = tmp_path / "taken"
    out.write_text("not a folder")
    assert main(["probe", "deps", "--treebank", str(tree), "--out", str(out)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert out.read_text() == "not a folder"
