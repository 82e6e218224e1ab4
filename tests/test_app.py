"""The app's JSON API in-process and under a real uvicorn on 127.0.0.1: answers, errors, limits, headers, queue."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from app_support import live_server, raw_request
from attnscope.app import work
from attnscope.app.requests import MAX_BODY
from attnscope.app.server import create_app
from attnscope.errors import InputError
from attnscope.tracing import trace
from attnscope.views.payload import PAYLOAD_VERSION

XSS = '</script><img src=x onerror="alert(1)"> & <b>bold</b>'
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def app(tiny: Any) -> Any:
    return create_app([tiny("bert")])


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def check_headers(response: Any) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "http" not in csp  # no other origin is named
    assert response.headers["x-content-type-options"] == "nosniff"


def test_models_lists_the_served_models(client: Any) -> None:
    r = client.get("/api/models")
    assert r.status_code == 200
    assert r.json() == {"models": ["tiny-bert"], "indexes": [], "atlases": []}
    check_headers(r)


def test_trace_returns_the_views_payload(client: Any, tiny: Any) -> None:
    r = post(client, "/api/trace", {"model": "tiny-bert", "text": "The cat sat.", "text_pair": "It was sad."})
    assert r.status_code == 200, r.text
    data = r.json()
    expected = trace(tiny("bert"), "The cat sat.", "It was sad.")
    assert data["tokens"] == list(expected.tokens.display)
    payload = data["payload"]
    assert payload["version"] == PAYLOAD_VERSION
    assert "neuron" in payload["views"]  # traced with queries and keys
    assert payload["sides"]["source"]["labels"][0] == "[CLS]"
    check_headers(r)


def test_hostile_text_comes_back_as_plain_json_strings(client: Any) -> None:
    r = post(client, "/api/trace", {"model": "tiny-bert", "text": XSS})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert b"<" not in r.content
    assert b">" not in r.content
    assert b"&" not in r.content
    tokens = r.json()["tokens"]
    assert "<" in tokens
    assert "/" in tokens
    assert "&" in tokens


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "nope", "text": "Hi."}, 404, "unknown model 'nope'"),
        ({"model": "/etc/passwd", "text": "Hi."}, 404, "served models are tiny-bert"),
        ({"model": "tiny-bert", "text": "word " * 600}, 422, "accepts at most 512 tokens"),
        ({"model": "tiny-bert", "text": "   "}, 422, "only white space"),
        ({"model": "tiny-bert"}, 400, "text must be a non-empty string"),
        ({"model": "tiny-bert", "text": "Hi.", "k": True}, 400, "k must be an integer"),
        ({"model": "tiny-bert", "text": "Hi.", "k": 0}, 422, "k must be from 1 to 50"),
        ({"model": "tiny-bert", "text": "Hi.", "mask": "1"}, 400, "mask must be a list of integers"),
        ({"model": "tiny-bert", "text": "Hi.", "mask": [1, 1]}, 400, "more than once"),
        ({"model": "tiny-bert", "text": "Hi.", "logit_lens": "yes"}, 400, "true or false"),
        ({"model": "tiny-bert", "text": "Hi.", "modle": 1}, 400, "unknown field(s) 'modle'"),
        ({"model": "tiny-bert", "text": "\ud800"}, 400, "lone surrogate"),
        ({"model": 3, "text": "Hi."}, 400, "model must be a non-empty string"),
        ([1, 2], 400, "must be a JSON object"),
    ],
)
def test_bad_requests_get_one_clear_json_error(client: Any, body: Any, status: int, words: str) -> None:
    r = post(client, "/api/trace", body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    check_headers(r)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{", "not valid UTF-8 JSON"),
        (b'{"model": "tiny-bert", "text": "\xff\xfe"}', "not valid UTF-8 JSON"),
        (b"[" * 20000 + b"]" * 20000, "not valid UTF-8 JSON"),  # deeper than the parser's recursion limit
        (b'{"model": "tiny-bert", "text": "Hi.", "k": NaN}', "not valid UTF-8 JSON"),
        (b'{"model": "tiny-bert", "text": "Hi.", "k": 1' + b"0" * 5000 + b"}", "not valid UTF-8 JSON"),
        (b"null", "must be a JSON object, got null"),
        (b"", "not valid UTF-8 JSON"),
    ],
)
def test_malformed_bodies_are_400(client: Any, content: bytes, words: str) -> None:
    r = client.post("/api/trace", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


def test_body_limit_and_content_type(client: Any) -> None:
    big = {"model": "tiny-bert", "text": "a " * MAX_BODY}
    r = post(client, "/api/trace", big)
    assert r.status_code == 413
    assert f"the limit is {MAX_BODY}" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"model": "tiny-bert", "text": "'
        for _ in range(100):
            yield b"a" * 1024

    r = client.post("/api/trace", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post(
        "/api/trace", content=b'{"model": "tiny-bert", "text": "Hi."}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415  # a simple cross-site form post cannot reach the model


def test_unknown_paths_methods_and_hosts(client: Any) -> None:
    r = client.get("/api/nothing")
    assert r.status_code == 404
    assert "no such page" in r.json()["error"]
    check_headers(r)
    r = client.get("/api/trace")
    assert r.status_code == 405
    assert "error" in r.json()
    r = client.get("/api/models", headers={"host": "evil.example"})  # a DNS-rebinding page
    assert r.status_code == 400
    assert "Host header refused" in r.json()["error"]
    check_headers(r)


def test_page_and_static_files(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    check_headers(r)
    html = r.text
    assert '<script src="/static/attnscope.js"' in html
    assert '<script src="/static/app.js"' in html
    assert "<script>" not in html
    assert "http" not in html
    for path in ("/static/attnscope.js", "/static/app.js", "/static/app.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert len(r.content) > 100, path
        check_headers(r)


def test_search_without_indexes_is_404(client: Any) -> None:
    body = {"index": "ewt", "model": "tiny-bert", "text": "Hi.", "token": 1, "layer": 0}
    r = post(client, "/api/search", body)
    assert r.status_code == 404
    assert "unknown index 'ewt'" in r.json()["error"]


def test_full_queue_answers_503_with_retry_after(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass runs (held on an event), none may wait (queue_size=0): a second request gets 503 at once."""
    app = create_app([tiny("bert")], queue_size=0)
    started, release = threading.Event(), threading.Event()
    real = work.trace_json

    def held(*args: Any) -> Any:
        started.set()
        assert release.wait(30)
        return real(*args)

    monkeypatch.setattr(work, "trace_json", held)
    body = {"model": "tiny-bert", "text": "Hi there."}

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            first = asyncio.create_task(c.post("/api/trace", json=body))
            while not started.is_set():
                await asyncio.sleep(0.01)
            second = await c.post("/api/trace", json=body)
            models = await c.get("/api/models")  # the event loop stays free meanwhile
            release.set()
            return await first, second, models

    first, second, models = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 503
    assert int(second.headers["retry-after"]) >= 1
    assert "busy" in second.json()["error"]
    assert models.status_code == 200
    assert app.state.slots["tiny-bert"].pending == 0


def test_disconnecting_clients_leave_the_server_healthy(tiny: Any) -> None:
    app = create_app([tiny("bert")])
    with live_server(app) as url:
        port = urlsplit(url).port
        assert port is not None
        body = json.dumps({"model": "tiny-bert", "text": "The cat sat on the mat."}).encode()
        head = (
            f"POST /api/trace HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        raw_request(port, head + body[:10])  # gone halfway through the body
        for _ in range(3):
            raw_request(port, head + body)  # gone before the answer
        raw_request(port, b"GARBAGE\r\n\r\n")
        reply = raw_request(port, head + body, read=True)  # HTTP/1.1 keep-alive: read until the server closes
        assert reply.startswith(b"HTTP/1.1 200")
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.post("/api/trace", json={"model": "tiny-bert", "text": "Still here."}).status_code == 200
            assert c.get("/api/models").status_code == 200
        assert app.state.slots["tiny-bert"].pending == 0


def test_short_load_only_clean_answers(tiny: Any) -> None:
    """10 clients x 5 requests on 127.0.0.1: every answer is 200 or a clean 503 with Retry-After."""
    app = create_app([tiny("bert")], queue_size=4)
    statuses: list[int] = []

    async def client(url: str, n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            for i in range(5):
                r = await c.post("/api/trace", json={"model": "tiny-bert", "text": f"Client {n} asks question {i}."})
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert int(r.headers["retry-after"]) >= 1
                else:
                    assert r.status_code == 200, r.text
                    assert r.json()["payload"]["version"] == PAYLOAD_VERSION

    async def run(url: str) -> None:
        await asyncio.gather(*(client(url, n) for n in range(10)))

    with live_server(app) as url:
        asyncio.run(run(url))
    assert len(statuses) == 50
    assert statuses.count(200) >= 5


SENTENCES = ["The cat sat on the mat.", "A dog barked at the mailman.", "Birds sing in the morning."]


def test_atlas_of_a_served_model(tiny: Any, tmp_path: Any) -> None:
    from attnscope.app.work import read_atlas
    from attnscope.heads import head_roles

    atlas = head_roles(tiny("bert"), SENTENCES)
    app = create_app([tiny("bert")], atlases={"tiny-bert": atlas})
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/api/models").json()["atlases"] == ["tiny-bert"]
        payload = c.get("/api/atlas", params={"model": "tiny-bert"}).json()["payload"]
        assert payload["views"] == ["atlas"]
        assert len(payload["atlas"]["heads"]) == 2  # layers of the tiny model
        r = c.get("/api/atlas", params={"model": "nope"})
        assert r.status_code == 404
        assert "unknown model" in r.json()["error"]
    with pytest.raises(InputError, match="not served; add --model other"):
        create_app([tiny("bert")], atlases={"other": atlas})
    (tmp_path / "report.json").write_text('{"analysis": "probe-deps", "model_info": {"name": "x"}}')
    with pytest.raises(InputError, match="is not a heads report"):
        read_atlas(tmp_path)
    with pytest.raises(InputError, match="cannot read the head atlas"):
        read_atlas(tmp_path / "missing")


HOSTILE = [None, True, -1, 2**70, 1.5, "", "x" * 3000, [], {}, ["a"], [-1], [2**70], "\u0000", "<script>", {"a": [1]}]


@pytest.mark.parametrize("field", ["model", "text", "text_pair", "mask", "k", "logit_lens"])
def test_hostile_trace_fields_never_give_500(client: Any, field: str) -> None:
    for value in HOSTILE:
        body = {"model": "tiny-bert", "text": "Hi there.", field: value}
        r = post(client, "/api/trace", body)
        assert r.status_code in (200, 400, 404, 422), (field, value, r.status_code, r.text[:200])
        if r.status_code != 200:
            assert isinstance(r.json()["error"], str)


@pytest.mark.parametrize("field", ["index", "model", "text", "text_pair", "token", "layer", "heads", "k"])
def test_hostile_search_fields_never_give_500(client: Any, field: str) -> None:
    for value in HOSTILE:
        body = {"index": "ewt", "model": "tiny-bert", "text": "Hi.", "token": 1, "layer": 0, field: value}
        r = post(client, "/api/search", body)
        assert r.status_code in (400, 404, 422), (field, value, r.status_code, r.text[:200])
