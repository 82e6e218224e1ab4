"""The app's ASGI server: the page, its static files and the JSON API, in one Starlette application.

``create_app(models, indexes=...)`` builds it from models loaded beforehand (``attnscope serve`` does that);
tests run it in-process or under uvicorn. The page and the API accept only the names of those models and
indexes, never a path. Every response carries a Content-Security-Policy that lets the page load nothing but
its own server's files, and ``X-Content-Type-Options: nosniff``; every error is JSON ``{"error": ...}``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attnscope.app import work
from attnscope.app.requests import ApiError, read_json, search_request, shown_name, trace_request
from attnscope.app.slots import BusyError, ModelSlot
from attnscope.errors import AttnscopeError, InputError
from attnscope.text import inert_json

if TYPE_CHECKING:
    from attnscope.index import SearchIndex

log = logging.getLogger("attnscope.app")

# Scripts, styles and data only from this server; inline <style> is allowed because the views bundle
# styles itself with <style> elements it creates (no inline or foreign script can run).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
STATIC = {  # URL path -> (package, file name, media type)
    "/": ("attnscope.app", "static/index.html", "text/html; charset=utf-8"),
    "/static/app.css": ("attnscope.app", "static/app.css", "text/css; charset=utf-8"),
    "/static/app.js": ("attnscope.app", "static/app.js", "text/javascript; charset=utf-8"),
    "/static/attnscope.js": ("attnscope.views", "static/attnscope.js", "text/javascript; charset=utf-8"),
}


def create_app(
    models: Sequence[Any],
    indexes: Sequence[SearchIndex] = (),
    *,
    atlases: Mapping[str, Any] | None = None,
    queue_size: int = 8,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
) -> Starlette:
    """The app serving ``models`` (loaded ModelHandles, named by ``handle.name``) and ``indexes``.

    ``atlases``: model name -> its head atlas (a HeadAtlas or a heads report.json's content), shown by the
    atlas view with example sentences traced now. ``queue_size``: requests that may wait for a busy model
    before more get 503. ``allowed_hosts``: Host headers accepted (default loopback names only, which stops
    DNS-rebinding pages from reaching the API); None accepts any.
    """
    if not models:
        raise InputError("the app needs at least one model")
    slots: dict[str, ModelSlot] = {}
    for handle in models:
        if handle.name in slots:
            raise InputError(f"two models are named {handle.name!r}; give each model once")
        slots[handle.name] = ModelSlot(handle.name, handle, queue_size=queue_size)
    qk = {name: work.supports_qk(slot.handle) for name, slot in slots.items()}
    served: dict[str, SearchIndex] = {}
    for index in indexes:
        if index.model not in slots:
            raise InputError(
                f"index {index.name!r} was built with {index.model}, which is not served; add --model {index.model}"
            )
        index.check_model(slots[index.model].handle)
        served[index.name] = index

    atlas_payloads: dict[str, Any] = {}
    for name, atlas in (atlases or {}).items():
        if name not in slots:
            raise InputError(f"a head atlas is given for {name}, which is not served; add --model {name}")
        atlas_payloads[name] = work.atlas_payload(atlas, slots[name].handle)

    def slot_for(name: str) -> ModelSlot:
        if name not in slots:
            raise ApiError(404, f"unknown model {shown_name(name)}; the served models are {', '.join(slots)}")
        return slots[name]

    async def models_endpoint(request: Request) -> Response:
        listing = {
            "models": list(slots),
            "indexes": [{"name": i.name, "model": i.model} for i in served.values()],
            "atlases": list(atlas_payloads),
        }
        return json_response(listing)

    async def atlas_endpoint(request: Request) -> Response:
        name = request.query_params.get("model", "")
        slot_for(name)
        if name not in atlas_payloads:
            raise ApiError(404, f"no head atlas is served for {shown_name(name)} (start the server with --atlas DIR)")
        return await to_json_in_thread({"payload": atlas_payloads[name]})

    async def trace_endpoint(request: Request) -> Response:
        req = trace_request(await read_json(request))
        slot = slot_for(req.model)
        result = await slot.run(work.trace_json, slot.handle, req, qk[req.model])
        return await to_json_in_thread(result)

    async def search_endpoint(request: Request) -> Response:
        req = search_request(await read_json(request))
        if req.index not in served:
            known = ", ".join(served) or "none (start the server with --index DIR)"
            raise ApiError(404, f"unknown index {shown_name(req.index)}; the served indexes are {known}")
        index = served[req.index]
        slot = slot_for(req.model)
        if index.model != req.model:
            raise ApiError(422, f"index {index.name!r} was built with {index.model}, not {req.model}")

        return json_response(await slot.run(work.search_json, index, slot.handle, req))

    routes = [
        Route("/api/models", guarded(models_endpoint), methods=["GET"]),
        Route("/api/trace", guarded(trace_endpoint), methods=["POST"]),
        Route("/api/search", guarded(search_endpoint), methods=["POST"]),
        Route("/api/atlas", guarded(atlas_endpoint), methods=["GET"]),
        *(Route(path, guarded(static_endpoint), methods=["GET", "HEAD"]) for path in STATIC),
    ]
    middleware = [Middleware(SecurityHeaders, allowed_hosts=allowed_hosts)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.slots = slots
    app.state.indexes = served
    return app


def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint with every failure turned into a JSON error: ApiError as itself, a full queue 503 with
    Retry-After, bad input 422, and anything else (a bug) 500 with the traceback in the server's log."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as err:
            return error_response(err.status, err.message, err.headers)
        except BusyError as err:
            return error_response(503, str(err), {"Retry-After": str(err.retry_after)})
        except AttnscopeError as err:
            return error_response(422, str(err))
        except Exception as err:
            log.exception("internal error in %s", request.url.path)
            return error_response(500, f"internal error ({type(err).__name__}); this is a bug in attnscope")

    return run


async def static_endpoint(request: Request) -> Response:
    """The page and its script and style files."""
    package, name, media = STATIC[request.url.path]
    body = _static_file(package, name)
    return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})


@functools.cache
def _static_file(package: str, name: str) -> bytes:
    try:
        return resources.files(package).joinpath(name).read_bytes()
    except (FileNotFoundError, OSError):
        raise ApiError(
            503, f"the app's file {name} is not built: run ./dev demo (or: cd frontend && npm ci && npm run build)"
        ) from None


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON as the API sends it: ASCII only (any text, even a lone surrogate, survives), no NaN, and no raw
    ``<``, ``>`` or ``&`` (escaped as ``\\u003c``...), so even a client that sniffs it as HTML finds no markup."""
    return Response(inert_json(data), status, {"Cache-Control": "no-store", **(headers or {})}, "application/json")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with the status."""
    return json_response({"error": message}, status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path 404, wrong method 405) as JSON too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    if status == 404:
        detail = f"no such page or API: {request.url.path[:200]}"
    return error_response(status, str(detail), dict(getattr(exc, "headers", None) or {}))


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response (errors included), and a 400 for a Host
    header not in ``allowed_hosts`` (None: any)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] | None = None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            host = host_name(dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                await error_response(400, "this server answers only to its own address (Host header refused)")(
                    scope, receive, lambda m: send(_with_headers(m))
                )
                return

        async def send_with_headers(message: Message) -> None:
            await send(_with_headers(message))

        await self.app(scope, receive, send_with_headers)


def _with_headers(message: Message) -> Message:
    if message["type"] != "http.response.start":
        return message
    names = {name for name, _ in SECURITY_HEADERS}
    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    return {**message, "headers": kept + SECURITY_HEADERS}


def host_name(header: str) -> str:
    """The host part of a Host header ("127.0.0.1:8000" -> "127.0.0.1", "[::1]:8000" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.split(":")[0]


async def to_json_in_thread(data: Any) -> Response:
    """A large result serialised off the event loop."""
    return await anyio.to_thread.run_sync(json_response, data)
