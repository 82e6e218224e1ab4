"""How the view bundle gets into a page: inline in every standalone page, once per notebook document.

The bundle (frontend/src, built by esbuild into static/attnscope.js) defines one global, ``attnscope``,
whose documented entry is ``attnscope.render(element, payload)``; on load it renders every pending
view root of its contract version, and loading the same bundle twice does nothing more.

In a notebook, the first output that shows a view carries the bundle, tagged with its key (contract
version + bundle hash); later outputs carry only their data and a fixed three-line loader that asks
the already loaded bundle to render them. Outputs are static HTML, so a saved notebook, a reopened
trusted notebook or its nbconvert HTML renders as it did live. The bundle goes with the first view
output of the kernel's session; when that cell runs again (its output replaced), its new first view
output carries it again. When the current cell cannot be told (no Jupyter kernel, or a front end that
sends no cell id) or each output is its own frame (Colab), every output carries the bundle, as
``fragment()`` always does. Cleared the
carrying output? ``attnscope.views.embed.forget_notebook_bundle()`` makes the next output carry it.
"""

from __future__ import annotations

import hashlib
import re
import sys
from functools import lru_cache
from importlib import resources
from typing import Any

from attnscope.errors import AttnscopeError
from attnscope.views.payload import PAYLOAD_VERSION

# Runs after an output that carries no bundle: a bundle loaded earlier in the document renders it.
LOADER = "<script>(function(){var a=window.attnscope;if(a&&a.renderPending)a.renderPending();})();</script>"


@lru_cache(maxsize=1)
def bundle() -> str:
    """The built front-end bundle (one IIFE script), safe to inline in a <script> element."""
    path = resources.files("attnscope.views").joinpath("static/attnscope.js")
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise AttnscopeError(
            "the view bundle src/attnscope/views/static/attnscope.js is not built: run ./dev demo "
            "(or: cd frontend && npm ci && npm run build)"
        ) from None
    # '</script' would end the inline element early; in JavaScript '<\/script' means the same.
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


@lru_cache(maxsize=1)
def bundle_key() -> str:
    """The bundle's identity: contract version and the first 16 hex digits of its SHA-256."""
    return f"{PAYLOAD_VERSION}-{hashlib.sha256(bundle().encode()).hexdigest()[:16]}"


def bundle_script() -> str:
    """The bundle as one inline <script> element tagged with its key (read by the bundle on load)."""
    return f'<script data-attnscope-bundle="{bundle_key()}">{bundle()}</script>'


# bundle key -> (cell id, execute request id) of the notebook output that carries that bundle.
_CARRIERS: dict[str, tuple[str, str]] = {}


def notebook_needs_bundle() -> bool:
    """Whether the output being made now must carry the bundle (see the module docstring)."""
    run = current_run()
    if run is None:
        return True
    key = bundle_key()
    carrier = _CARRIERS.get(key)
    if carrier is None or (carrier[0] == run[0] and carrier[1] != run[1]):
        _CARRIERS[key] = run  # the first view output, or its cell run again (which replaced that output)
        return True
    return False


def forget_notebook_bundle() -> None:
    """Make the next notebook output carry the bundle again (e.g. after clearing every output)."""
    _CARRIERS.clear()


def current_run() -> tuple[str, str] | None:
    """(cell id, execute request id) of the notebook cell running now, or None when it cannot be told.

    JupyterLab, Notebook 7 and nbclient send the cell id in the execute request's metadata. Colab shows
    each output in its own frame, so there every output is its own document: None.
    """
    if "google.colab" in sys.modules:
        return None
    try:
        from IPython import get_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    kernel: Any = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell") if hasattr(kernel, "get_parent") else kernel._parent_header
    except Exception:  # an unknown kernel: carry the bundle every time
        return None
    parent = parent or {}
    cell = parent.get("metadata", {}).get("cellId")
    request = parent.get("header", {}).get("msg_id")
    return (str(cell), str(request)) if cell and request else None
