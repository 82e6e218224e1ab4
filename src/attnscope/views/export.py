"""Static PNG/SVG pictures of the views, drawn with matplotlib and no browser (for papers).

:func:`save_static` writes ``.png`` or ``.svg``; :func:`to_svg` returns the SVG text. Each view kind's
picture is drawn by the drawer the registry names (``attnscope/views/draw/<kind>.py``) from the same
:class:`~attnscope.views.resolve.Resolved` spec the interactive page reads, so both show the same
heads, colours, masked keys and renormalised weights. Token text is drawn as text, never parsed (no
mathtext, no TeX), and SVG output is repeatable byte for byte.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Protocol, cast

from attnscope.errors import AttnscopeError, InputError
from attnscope.files import check_target, write_atomic
from attnscope.traces import Trace
from attnscope.views.registry import VIEWS
from attnscope.views.resolve import resolve

SUPPORTED_SUFFIXES = (".png", ".svg")
PNG_DPI = 150
MAX_PIXELS = 30000  # longest side of a PNG; dpi is lowered to stay under it (Agg's hard limit is 65,536)

# Rc settings for every picture: text is text (no mathtext, no TeX), SVG ids are stable, text stays <text>.
_RC: dict[str, Any] = {
    "text.usetex": False,
    "text.parse_math": False,
    "svg.hashsalt": "attnscope",
    "svg.fonttype": "none",
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",
}


class _View(Protocol):
    """What static export reads from a view object: its kind, its trace (or ``subject``) and its options."""

    @property
    def kind(self) -> str: ...

    @property
    def trace(self) -> Trace: ...

    @property
    def options(self) -> Any: ...


def save_static(view: _View, path: str | Path) -> Path:
    """Write the view as a picture: ``.png`` or ``.svg``, chosen by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"cannot save a static picture as {path.name!r}: supported suffixes are "
            f"{', '.join(SUPPORTED_SUFFIXES)} (and .html for the interactive page)"
        )
    check_target(path, "image")
    write_atomic(path, _render(view, suffix[1:]), "image")
    return path


def to_svg(view: _View) -> str:
    """The view as one self-contained SVG document; the same view always gives the same text."""
    return _render(view, "svg").decode("utf-8")


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise AttnscopeError("static export (.png/.svg) needs matplotlib: pip install 'attnscope[views]'") from None
    return matplotlib


def _render(view: _View, fmt: str) -> bytes:
    """Draw the view on an Agg canvas (pyplot and the global backend are left alone) and encode it."""
    kind = getattr(view, "kind", None)
    if kind not in VIEWS:
        raise InputError(f"no static picture for a view of kind {kind!r}; static export supports {', '.join(VIEWS)}")
    matplotlib = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from attnscope.views.draw.common import STYLES

    spec = VIEWS[kind]
    if spec.subject == "trace":
        resolved: Any = resolve(view.trace, view.options)
        subject: Any = view.trace
    else:  # a view of an analysis result draws from it and the options (see ViewSpec.subject)
        resolved, subject = view.options, cast(Any, view).subject
    style = STYLES[view.options.theme]
    draw = spec.draw_function()
    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        # A glyph missing from the font is drawn as a box; one warning per token would only be noise.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        fig = draw(subject, resolved, style)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        if fmt == "svg":
            fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor=style.background)
        else:
            width, height = fig.get_size_inches()
            dpi = min(PNG_DPI, MAX_PIXELS / max(width, height))
            fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor=style.background)
    return bytes(buf.getvalue())
