"""``attnscope serve``: load the models (and corpus indexes) and serve the app on 127.0.0.1."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import webbrowser
from pathlib import Path
from typing import Any

from attnscope.errors import InputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve the app: type text, pick a model, mask tokens, compare, search a corpus (exBERT, locally)",
        description="Load the given models (default: the embedded MiniLM) and corpus indexes, and serve the app "
        "page and its JSON API on http://127.0.0.1:PORT/. The page may use exactly these models and indexes.",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_PATH",
        default=None,
        help="a Hugging Face model name or local folder to serve (repeat for several; default: the embedded MiniLM)",
    )
    p.add_argument(
        "--index",
        action="append",
        type=Path,
        metavar="DIR",
        default=None,
        help="a corpus index folder to search (built by attnscope index; repeat for several)",
    )
    p.add_argument(
        "--atlas",
        action="append",
        type=Path,
        metavar="DIR",
        default=None,
        help="a heads report folder "
        "(attnscope heads --out DIR) of a served model: the page shows its head atlas (repeat for several)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than a loopback address (anyone who reaches it can run the models)",
    )
    p.add_argument("--queue", type=int, default=8, help="requests that may wait per model before 503 (default 8)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: CUDA if present)")
    p.add_argument("--dtype", default=None, help="float32 (default), float16 or bfloat16")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run modelling code shipped with the models (off by default; only for authors you trust)",
    )
    p.set_defaults(func=_cmd_serve)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a one-line error (port in use, unknown address)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as err:
        raise InputError(f"cannot listen on {host!r}: {err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} ({err.strerror}); pass another --port (0: any free one)"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The page's address for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def open_indexes(folders: list[Path]) -> list[Any]:
    """The corpus indexes in ``folders`` (each checked by ``attnscope.index.open_index``)."""
    from attnscope.index import open_index

    return [open_index(folder) for folder in folders]


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from attnscope.app.server import LOOPBACK_HOSTS, create_app
    from attnscope.app.work import read_atlas
    from attnscope.loading import load

    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        raise InputError(
            f"--host {args.host} would let other machines run the models; pass --allow-remote to do it anyway "
            "(or keep the default 127.0.0.1)"
        )
    if args.queue < 0:
        raise InputError("--queue must be 0 or more")
    indexes = open_indexes(args.index or [])  # files first: a wrong folder fails before models load
    atlases = dict(read_atlas(folder) for folder in args.atlas or [])
    sock = bind(args.host, args.port)  # before loading models: a port in use fails fast
    try:
        names = args.model or [None]
        handles = []
        for name in names:
            print(f"loading {name or 'the embedded MiniLM'} ...", flush=True)
            handles.append(
                load(name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, lm_head=True)
            )
        hosts = None if remote else (*LOOPBACK_HOSTS, str(sock.getsockname()[0]))
        app = create_app(handles, indexes, atlases=atlases, queue_size=args.queue, allowed_hosts=hosts)
        url = url_of(sock)
        if remote:
            print(
                f"warning: listening on {args.host}: anyone who can reach this machine can use the models",
                file=sys.stderr,
            )
        print(f"attnscope app: {url}  (models: {', '.join(h.name for h in handles)}; Ctrl+C stops it)", flush=True)
        if args.open:
            webbrowser.open(url)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
