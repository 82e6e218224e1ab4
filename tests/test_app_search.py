"""The app's /api/search over a corpus index built here (20 EWT dev sentences, the trained tiny masked LM):
answers equal the index's own search, labels, heads, errors, and an index built from the bare model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app_support import ewt_slice, shared_model
from attnscope.app.server import create_app
from attnscope.errors import InputError

MLM = "tiny-bert-mlm-ewt"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def mlm(shared_data: Path) -> Any:
    return shared_model(shared_data, MLM)


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ewt_slice(shared_data, tmp_path_factory.mktemp("ewt"))


@pytest.fixture(scope="module")
def index(corpus: Path, mlm: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from attnscope.index import build_index, open_index

    return open_index(build_index(corpus, tmp_path_factory.mktemp("idx") / "ewt", mlm, batch_size=4))


@pytest.fixture(scope="module")
def client(mlm: Any, tiny: Any, index: Any) -> Iterator[TestClient]:
    with TestClient(create_app([mlm, tiny("bert")], [index]), base_url=BASE) as c:
        yield c


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def test_search_finds_corpus_contexts_with_labels(client: Any, index: Any, mlm: Any) -> None:
    listing = client.get("/api/models").json()
    assert listing["indexes"] == [{"name": index.name, "model": MLM}]
    body = {"index": index.name, "model": MLM, "text": "The dog chased the ball.", "token": 2, "layer": 1, "k": 5}
    r = post(client, "/api/search", body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data == index.search(mlm, "The dog chased the ball.", token=2, layer=1, k=5).to_json()
    assert len(data["matches"]) == 5
    assert sum(data["summary"]["pos"].values()) == 5
    heads = post(client, "/api/search", {**body, "heads": [0, 2]}).json()
    assert heads["query"]["heads"] == [0, 2]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"index": "nope"}, 404, "unknown index 'nope'"),
        ({"model": "tiny-bert"}, 422, "was built with tiny-bert-mlm-ewt"),
        ({"model": "nope"}, 404, "unknown model"),
        ({"layer": 9}, 422, "layer"),
        ({"token": 99}, 422, "token"),
        ({"token": "2"}, 400, "token must be an integer"),
    ],
)
def test_search_errors(client: Any, index: Any, change: dict[str, Any], status: int, words: str) -> None:
    body = {"index": index.name, "model": MLM, "text": "The dog chased the ball.", "token": 2, "layer": 1, **change}
    r = post(client, "/api/search", body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_an_index_of_an_unserved_model_is_refused(index: Any, tiny: Any) -> None:
    with pytest.raises(InputError, match="not served; add --model tiny-bert-mlm-ewt"):
        create_app([tiny("bert")], [index])


def test_an_index_built_from_the_bare_model_serves_the_lm_head_model(corpus: Path, mlm: Any, tmp_path: Path) -> None:
    """attnscope index loads the model bare; attnscope serve loads it with its LM head: the same model."""
    import attnscope
    from attnscope.index import build_index, open_index

    bare = attnscope.load(mlm.model.name_or_path, device="cpu")
    folder = build_index(corpus, tmp_path / "bare", bare, batch_size=4)
    app = create_app([mlm], [open_index(folder)])
    with TestClient(app, base_url=BASE) as c:
        body = {"index": "bare", "model": MLM, "text": "The dog chased the ball.", "token": 2, "layer": 0, "k": 3}
        r = post(c, "/api/search", body)
        assert r.status_code == 200, r.text
        assert r.json() == open_index(folder).search(bare, "The dog chased the ball.", token=2, layer=0, k=3).to_json()
