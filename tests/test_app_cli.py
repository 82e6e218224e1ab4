"""``attnscope serve`` as a user runs it: prints its URL, serves the API, binds loopback unless told otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from attnscope.app.cli import is_loopback
from attnscope.cli import main


def test_a_non_loopback_host_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err
    assert err.count("\n") == 1


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert "pass another --port" in capsys.readouterr().err


def test_a_wrong_index_or_atlas_folder_is_one_line_before_models_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", "--index", str(tmp_path)]) == 2
    assert "is not an attnscope index" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--atlas", str(tmp_path)]) == 2
    assert "cannot read the head atlas" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("10.0.0.2", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_prints_its_url_and_answers(tiny_model_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnscope.cli", "serve", "--model", str(tiny_model_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = ""
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("attnscope app: "):
                url = line.split()[2]
        assert url.startswith("http://127.0.0.1:"), url
        name = tiny_model_dir.name
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/api/models").json() == {"models": [name], "indexes": [], "atlases": []}
            r = c.post("/api/trace", json={"model": name, "text": "Hello there."})
            assert r.status_code == 200
            assert r.json()["tokens"][0] == "[CLS]"
            assert c.post("/api/trace", json={"model": str(tiny_model_dir), "text": "Hi."}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
