"""The app's /api/trace with masks: predictions of a trained masked LM and the comparison of original and edited,
through the HTTP API, in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app_support import shared_model
from attnscope.app.server import create_app

MLM = "tiny-bert-mlm-ewt"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def mlm(shared_data: Path) -> Any:
    """The small masked LM trained on EWT (../shared/models), loaded with its LM head as attnscope serve does."""
    return shared_model(shared_data, MLM)


@pytest.fixture(scope="module")
def client(mlm: Any, tiny: Any) -> Iterator[TestClient]:
    with TestClient(create_app([mlm, tiny("bert")]), base_url=BASE) as c:
        yield c


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def test_masking_gives_predictions_and_the_comparison(client: Any) -> None:
    plain = post(client, "/api/trace", {"model": MLM, "text": "The dog chased the ball."}).json()
    assert plain["compare"] is None
    assert plain["predictions"]["kind"] == "masked"
    assert plain["predictions"]["predictions"] == []  # nothing masked yet
    ball = plain["tokens"].index("ball")
    r = post(client, "/api/trace", {"model": MLM, "text": "The dog chased the ball.", "mask": [ball], "k": 3})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["tokens"][ball] == "[MASK]"
    assert data["payload"]["sides"]["source"]["labels"][ball] == "[MASK]"
    pred = data["predictions"]
    assert pred["edits"] == [{"index": ball, "token": "ball", "now": "[MASK]"}]
    (at,) = pred["predictions"]
    assert at["position"] == ball
    assert len(at["top"]) == 3
    probs = [c["prob"] for c in at["top"]]
    assert probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1
    assert at["layers"] is None
    compare = data["compare"]
    assert compare["views"] == ["compare"]
    assert compare["version"] == data["payload"]["version"]


def test_logit_lens_adds_one_row_per_layer(client: Any) -> None:
    body = {"model": MLM, "text": "I like green tea.", "mask": [3], "logit_lens": True, "k": 2}
    pred = post(client, "/api/trace", body).json()["predictions"]
    assert pred["lens"] == "logit lens"
    layers = pred["predictions"][0]["layers"]
    assert len(layers) == 4  # the tiny MLM's layers
    assert all(len(row) == 2 for row in layers)


def test_a_model_without_lm_head_masks_without_predictions(client: Any) -> None:
    data = post(client, "/api/trace", {"model": "tiny-bert", "text": "Birds sing.", "mask": [1]}).json()
    assert data["predictions"]["kind"] is None
    assert data["predictions"]["predictions"] == []
    assert data["compare"]["views"] == ["compare"]


@pytest.mark.parametrize(("mask", "words"), [([0], "special"), ([99], "the input has 5 tokens")])
def test_bad_masks_are_422(client: Any, mask: list[int], words: str) -> None:
    r = post(client, "/api/trace", {"model": MLM, "text": "Birds sing.", "mask": mask})
    assert r.status_code == 422
    assert words in r.json()["error"]


def test_a_decoder_predicts_the_next_token_and_masking_removes(shared_data: Path) -> None:
    gpt2 = shared_model(shared_data, "tiny-gpt2-ewt")
    with TestClient(create_app([gpt2]), base_url=BASE) as c:
        plain = post(c, "/api/trace", {"model": "tiny-gpt2-ewt", "text": "I would like to"}).json()
        assert plain["predictions"]["kind"] == "next"
        (nxt,) = plain["predictions"]["predictions"]
        assert nxt["position"] == len(plain["tokens"]) - 1
        edited = post(c, "/api/trace", {"model": "tiny-gpt2-ewt", "text": "I would like to", "mask": [1]}).json()
        assert len(edited["tokens"]) == len(plain["tokens"]) - 1  # removed: a decoder has no mask token
        assert edited["predictions"]["edits"][0]["now"] is None
        assert edited["compare"]["views"] == ["compare"]
