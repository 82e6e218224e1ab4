"""Reading and checking the JSON API's request bodies: every problem becomes one :class:`ApiError`.

The body is read in chunks up to :data:`MAX_BODY` bytes (413 beyond, before it is parsed), must be JSON
(415 for another content type, 400 when malformed) holding an object whose fields have the documented
types (400 otherwise). Names of models and indexes are checked by the server (404).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

MAX_BODY = 64 * 1024  # bytes in a request body
MAX_K = 50  # top-k predictions or nearest corpus contexts
_NAME_SHOWN = 80  # characters of a name an error message quotes


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"error": message}``; ``headers`` go with it (e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class TraceRequest:
    """``POST /api/trace``: the text (and pair) to trace on ``model``, token indices to mask, top-k."""

    model: str
    text: str
    text_pair: str | None = None
    mask: tuple[int, ...] = ()
    k: int = 5
    logit_lens: bool = False


@dataclass(frozen=True)
class SearchRequest:
    """``POST /api/search``: the k corpus contexts nearest to token ``token`` of the text, at ``layer``."""

    index: str
    model: str
    text: str
    token: int
    layer: int
    text_pair: str | None = None
    heads: tuple[int, ...] | None = None
    k: int = 10


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, read no further than :data:`MAX_BODY` bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the request body as JSON with the header Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"the request body is {int(declared)} bytes; the limit is {MAX_BODY}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, f"the request body is over {MAX_BODY} bytes; the limit is {MAX_BODY}")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the body was complete") from None
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise ApiError(400, f"the request body is not valid UTF-8 JSON ({_short(str(err))})") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {_json_type(data)}")
    return data


def trace_request(data: dict[str, Any]) -> TraceRequest:
    """Check the fields of a trace request (unknown fields are an error: a typo should not pass silently)."""
    _only(data, ("model", "text", "text_pair", "mask", "k", "logit_lens"))
    mask = _int_list(data.get("mask"), "mask") or ()
    if len(set(mask)) != len(mask):
        raise ApiError(400, "mask lists a token index more than once")
    return TraceRequest(
        model=_string(data, "model"),
        text=_text(data, "text"),
        text_pair=_optional_text(data, "text_pair"),
        mask=mask,
        k=_int(data, "k", 5, 1, MAX_K),
        logit_lens=_bool(data, "logit_lens"),
    )


def search_request(data: dict[str, Any]) -> SearchRequest:
    """Check the fields of a search request."""
    _only(data, ("index", "model", "text", "text_pair", "token", "layer", "heads", "k"))
    return SearchRequest(
        index=_string(data, "index"),
        model=_string(data, "model"),
        text=_text(data, "text"),
        text_pair=_optional_text(data, "text_pair"),
        token=_int(data, "token", None, 0, None),
        layer=_int(data, "layer", None, 0, None),
        heads=_int_list(data.get("heads"), "heads"),
        k=_int(data, "k", 10, 1, MAX_K),
    )


def shown_name(name: str) -> str:
    """A name as an error message quotes it: repr, cut to a readable length."""
    text = repr(name)
    return text if len(text) <= _NAME_SHOWN else text[: _NAME_SHOWN - 1] + "…"


def _only(data: dict[str, Any], fields: tuple[str, ...]) -> None:
    extra = sorted(set(data) - set(fields))
    if extra:
        raise ApiError(
            400, f"unknown field(s) {', '.join(shown_name(f) for f in extra[:5])}; the fields are {', '.join(fields)}"
        )


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} must be a non-empty string, got {_json_type(value)}")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = _string(data, key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{key} holds a lone surrogate (\\ud800-\\udfff); send valid Unicode text") from None
    if not value.strip():
        raise ApiError(422, f"{key} is only white space; give some text to trace")
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    if data.get(key) is None or data.get(key) == "":
        return None
    return _text(data, key)


def _int(data: dict[str, Any], key: str, default: int | None, low: int, high: int | None) -> int:
    value = data.get(key, default)
    if value is None:
        raise ApiError(400, f"{key} is required (an integer)")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{key} must be an integer, got {_json_type(value)}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ApiError(422, f"{key} must be {bound}, got {value}")
    return value


def _int_list(value: Any, key: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ApiError(400, f"{key} must be a list of integers, got {_json_type(value)}")
    if len(value) > 4096:
        raise ApiError(422, f"{key} lists {len(value)} indices; at most 4096")
    return tuple(value)


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false, got {_json_type(value)}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    if value is None:
        return "null"
    if isinstance(value, str) and not value:
        return "an empty string"
    return names.get(type(value), type(value).__name__)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
