"""Shared fixtures: the embedded MiniLM (integration tier) and tiny random models (unit tier)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the Hub; failures must be fast

import tiny_models

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The real embedded all-MiniLM-L6-v2, loaded once."""
    import attnscope

    return attnscope.load(device="cpu")


@pytest.fixture(scope="session")
def wordpiece() -> Any:
    """MiniLM's WordPiece tokenizer, shared by the tiny models."""
    from transformers import AutoTokenizer

    from attnscope.loading import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


@pytest.fixture(scope="session")
def tiny(wordpiece: Any) -> Callable[[str], Any]:
    """Factory: ``tiny("gpt2")`` is a ModelHandle of a tiny random model of that family (cached)."""
    from attnscope.loading import ModelHandle

    cache: dict[str, Any] = {}

    def make(family: str) -> Any:
        if family not in cache:
            cache[family] = ModelHandle.from_model(tiny_models.build(family), wordpiece, f"tiny-{family}")
        return cache[family]

    return make


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip with the reason if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lies beside the checkout in dev and CI)")
    return SHARED_DATA


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium, driven by Playwright, for the whole session."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (./dev test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def watched_page(browser: Any, allowed: tuple[str, ...] = ("data:",)) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page and the list of what went wrong on it: a request to a URL outside ``allowed`` (aborted),
    a console error, a page error, a dialog. The browser tests' fixtures assert the list is empty."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    problems: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(allowed):
            r.continue_()
        else:
            problems.append(f"request outside {', '.join(allowed)}: {r.request.url}")
            r.abort()

    context.route("**/*", route)
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    try:
        yield pg, problems
    finally:
        context.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, wordpiece: Any) -> Path:
    """A tiny random BERT and MiniLM's tokenizer saved as a model folder (what --model and Ray workers load)."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_models.build("bert").save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """A real Ray cluster started here on 127.0.0.1 with 2 CPUs and no dashboard; its address; stopped at the end."""
    import ray

    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp,
        log_to_driver=False,
        logging_level="warning",
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
