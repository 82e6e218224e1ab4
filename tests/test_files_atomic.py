"""Output files are written whole or not at all, and get the mode the umask gives any new file."""

from __future__ import annotations

import os
import resource
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from attnscope import Trace
from attnscope.errors import OutputError
from attnscope.files import write_atomic
from attnscope.views import head_view


def _trace(n: int = 6) -> Trace:
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, n, n)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    return Trace.from_attentions(list(att[:, None]), ["[CLS]", *[f"w{i}" for i in range(n - 2)], "[SEP]"])


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_trace_file_and_page_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    trace = _trace()
    trace.save(tmp_path / "t.safetensors")
    head_view(trace).save(tmp_path / "p.html")
    for name in ("t.safetensors", "p.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert Trace.load(tmp_path / "t.safetensors").tokens == trace.tokens
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.html", "t.safetensors"]  # no temporary left
    os.chmod(tmp_path / "p.html", 0o640)
    head_view(trace).save(tmp_path / "p.html")  # a replaced file keeps its mode
    assert stat.S_IMODE((tmp_path / "p.html").stat().st_mode) == 0o640


def test_file_size_limit_keeps_the_old_page(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("old page", encoding="utf-8")
    view = head_view(_trace(40))
    html = view.to_html()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(html) // 2, hard))
    try:
        with pytest.raises(OutputError, match=r"cannot write page .*page\.html: File too large"):
            view.save(page)
        with pytest.raises(OutputError, match="trace file"):
            view.trace.save(tmp_path / "t.safetensors")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert page.read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


@pytest.mark.parametrize("what", ["folder", "unwritable", "under-a-file"])
def test_unwritable_targets_are_one_clear_error(tmp_path: Path, what: str) -> None:
    if what == "folder":
        target = tmp_path / "p.html"
        target.mkdir()
        match = "is a folder"
    elif what == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target, match = locked / "p.html", "Permission denied"
    else:
        (tmp_path / "file").write_text("x")
        target, match = tmp_path / "file" / "p.html", "is a file, not a folder"
    with pytest.raises(OutputError, match=match):
        head_view(_trace()).save(target)
    with pytest.raises(OutputError, match=match):
        write_atomic(target, b"x")
