"""Running the app for tests: a real uvicorn server on 127.0.0.1 (a free port), stopped at the end."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL ("http://127.0.0.1:PORT")."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def raw_request(port: int, data: bytes, read: bool = False) -> bytes:
    """Send raw bytes to 127.0.0.1:port, optionally read the reply, and close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(data)
        if not read:
            return b""
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def shared_model(shared_data: Path, name: str) -> Any:
    """A model of ../shared/models (``tiny-bert-mlm-ewt``, ``tiny-gpt2-ewt``) loaded as attnscope serve loads it:
    with its LM head. Skips the test when the folder is absent."""
    import pytest

    import attnscope

    folder = shared_data.parent / "models" / name
    if not folder.is_dir():
        pytest.skip(f"shared model {folder} not found")
    return attnscope.load(folder, device="cpu", lm_head=True)


def ewt_slice(shared_data: Path, folder: Path, sentences: int = 20) -> Path:
    """The first ``sentences`` sentences of EWT dev as a CoNLL-U file in ``folder``."""
    text = (shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu").read_text(encoding="utf-8")
    path = folder / "slice.conllu"
    path.write_text("\n\n".join(text.split("\n\n")[:sentences]) + "\n\n", encoding="utf-8")
    return path
