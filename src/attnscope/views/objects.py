"""View objects: values that display themselves in notebooks and save as self-contained HTML (or images).

``head_view``, ``model_view``, ``neuron_view``, ``heatmap_view`` and ``page`` build a :class:`View`
from a Trace or from BertViz's call shapes (a tuple of per-layer attention tensors and token strings).
Showing a view is the caller's choice: a notebook shows it as the last value of a cell; nothing is
displayed as a side effect.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnscope.errors import InputError
from attnscope.files import check_target, write_atomic
from attnscope.traces import Trace
from attnscope.views.embed import LOADER, bundle, bundle_key, bundle_script, notebook_needs_bundle
from attnscope.views.options import Theme, ViewOptions
from attnscope.views.payload import PAYLOAD_VERSION, Payload, Precision, build_payload, payload_json
from attnscope.views.registry import NEEDS, VIEWS, available_views, view_spec
from attnscope.views.resolve import resolve

__all__ = ["CSP", "Shown", "View", "bundle", "to_trace"]

# The page may run inline scripts and styles and read data: images; it may load nothing from anywhere.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"


class Shown:
    """What every view object shares: HTML page, notebook display and saving (.html, .png, .svg).

    A subclass gives ``kind`` (a registered view name, or "page"), ``options`` (its theme at least),
    :meth:`payload` and :meth:`subject_name`; :class:`View` shows a trace, ``AtlasView`` a head atlas.
    """

    kind: str
    options: ViewOptions
    _json: str | None = None

    def payload(self) -> Payload:
        """The versioned data the front end renders."""
        raise NotImplementedError

    def subject_name(self) -> str:
        """The name a page's title gives what it shows (the model's)."""
        raise NotImplementedError

    def payload_json(self) -> str:
        """The payload as JSON, escaped for a <script> element (built once)."""
        payload = self.payload()
        if self._json is None:
            self._json = payload_json(payload)
        return self._json

    @property
    def element_id(self) -> str:
        """The root element's id, derived from the content: same input, same id."""
        digest = hashlib.sha256(f"{self.kind}\n{self.payload_json()}".encode()).hexdigest()
        return f"attnscope-{digest[:16]}"

    def _root(self, note: str) -> str:
        """The view's root element: its data block, and a note shown until (unless) the bundle renders it."""
        return (
            f'<div class="attnscope-root as-{self.options.theme}" id="{self.element_id}" '
            f'data-attnscope-state="pending" data-attnscope-view="{self.kind}" '
            f'data-attnscope-version="{PAYLOAD_VERSION}" data-attnscope-bundle="{bundle_key()}">'
            f'<script type="application/json">{self.payload_json()}</script>'
            f"<div>{html.escape(note)}</div></div>\n"
        )

    def fragment(self) -> str:
        """A self-contained HTML snippet (root element, data block, bundle) to embed in any page.

        The same bundle embedded many times in one document loads once (see :mod:`attnscope.views.embed`).
        """
        note = (
            "attnscope view: it needs JavaScript (in Jupyter, trust the notebook; or save it as HTML and open "
            "the file)."
        )
        return self._root(note) + bundle_script()

    def notebook_fragment(self) -> str:
        """The snippet a notebook shows: the bundle only in the document's first view output, then a loader."""
        if notebook_needs_bundle():
            return self.fragment()
        note = (
            "attnscope view: it needs JavaScript and the attnscope script that the first view output of this "
            "notebook carries (trust the notebook; if that output was cleared, run its cell again; if that cell "
            "is gone, run attnscope.views.embed.forget_notebook_bundle() and then this cell)."
        )
        return self._root(note) + LOADER

    def to_html(self) -> str:
        """A complete, self-contained HTML page: no network requests, works offline."""
        what = VIEWS[self.kind].title.lower() if self.kind in VIEWS else "views"
        title = html.escape(f"attnscope {what}: {self.subject_name()}")
        bg = "#ffffff" if self.options.theme == "light" else "#1e1e1e"
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n"
            f"<style>body{{margin:0;padding:12px;background:{bg}}}</style>\n"
            # The bundle's theme switch restyles a body of class attnscope-page (as-dark / as-light).
            f'</head>\n<body class="attnscope-page as-{self.options.theme}">\n{self.fragment()}\n</body>\n</html>\n'
        )

    def _static(self) -> Any:
        """The object static export draws (see :func:`attnscope.views.export.save_static`)."""
        return self

    def save(self, path: str | Path) -> Path:
        """Write the view: ``.html`` (interactive page), or ``.png`` / ``.svg`` (static image)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            check_target(path, "page")
            return write_atomic(path, self.to_html(), "page")
        if suffix in (".png", ".svg"):
            from attnscope.views.export import save_static

            save_static(self._static(), path)
            return path
        raise InputError(f"cannot save a view as {path.name!r}: use a .html, .png or .svg file name")

    def _repr_html_(self) -> str:
        return self.notebook_fragment()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self.notebook_fragment(), "text/plain": repr(self)}


class SubjectView(Shown):
    """A view whose subject is not one trace (the atlas, a comparison): its payload comes from the registry's
    builder, ``builder(subject, options, precision, linked traces)``, built once (see ARCHITECTURE.md).
    """

    subject: Any
    precision: Precision = "uint8"
    _payload: Payload | None = None

    def linked_traces(self) -> Any:
        """The traces the view links to or shows, as its builder takes them."""
        raise NotImplementedError

    def payload(self) -> Payload:
        """The view's payload (built once)."""
        if self._payload is None:
            build = VIEWS[self.kind].build_function()
            if build is None:
                raise TypeError(f"the view {self.kind!r} names no payload builder in the registry")
            self._payload = build(self.subject, self.options, self.precision, self.linked_traces())
        return self._payload


@dataclass(eq=False)
class View(Shown):
    """One view (``kind`` head/model/neuron/heatmap) or a page of views as tabs (``kind`` "page").

    ``trace`` and ``options`` are what it shows; ``precision`` is how attention travels in the page
    ("uint8": error <= 1/255, or "float32": exact).
    """

    kind: str
    trace: Trace
    options: ViewOptions = field(default_factory=ViewOptions)
    views: tuple[str, ...] = ()
    precision: Precision = "uint8"

    def __post_init__(self) -> None:
        if self.kind != "page":
            view_spec(self.kind)
        _check_trace(self.trace)
        if not self.views:
            self.views = (self.kind,) if self.kind != "page" else available_views(self.trace)
        check_view(self.trace, self.views, self.options)
        self._payload: Payload | None = None
        self._json = None
        self._key: tuple[object, ...] = ()

    def payload(self) -> Payload:
        """The versioned data the front end renders (built once; again if the view's fields change)."""
        key = (self.options, self.views, self.precision, id(self.trace))
        if self._payload is None or key != self._key:
            self._payload = build_payload(self.trace, self.views, self.options, self.precision)
            self._key, self._json = key, None
        return self._payload

    def subject_name(self) -> str:
        """The traced model's name."""
        return self.trace.model.name

    def _static(self) -> Any:
        if self.kind == "page" and len(self.views) != 1:
            raise InputError(
                f"a page of {len(self.views)} views ({', '.join(self.views)}) has no single image; choose one "
                "(CLI: --views head) or save the page as .html"
            )
        return self if self.kind != "page" else View(self.views[0], self.trace, self.options, (), self.precision)

    def __repr__(self) -> str:
        shown = ", ".join(self.views)
        what = VIEWS[self.kind].title.lower() if self.kind in VIEWS else "views"
        return f"<attnscope {what} ({shown}) of {self.trace!r}>"


def check_view(trace: Trace, views: tuple[str, ...], options: ViewOptions) -> None:
    """Check indices, stack and each view's needs (e.g. queries/keys) against the trace when a view is made,
    not when it is shown."""
    _check_trace(trace)
    resolved = resolve(trace, options)
    for name in views:
        spec = view_spec(name)
        for need in spec.needs:
            if NEEDS[need].missing(trace, resolved.stack):
                raise InputError(
                    f"the {spec.title.lower()} needs {need} data for the {resolved.stack} stack: {NEEDS[need].how}"
                )


def _check_trace(trace: Any) -> None:
    if not isinstance(trace, Trace):
        raise InputError(f"expected an attnscope Trace, got {type(trace).__name__}")
    if not trace.attention:
        raise InputError("this trace holds no attention to show (no encoder, decoder or cross stack)")


def _as_int(value: Any, what: str) -> int | None:
    """An index given as int, numpy scalar or one-element tensor/array (BertViz's sentence_b_start)."""
    if value is None:
        return None
    try:
        if hasattr(value, "reshape"):
            flat = value.reshape(-1)
            if len(flat) != 1:
                raise InputError(f"{what} must be one number, got {len(flat)} values")
            value = flat[0]
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be an integer, got {value!r}") from None


def _as_indices(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a list of integers, got {value!r}") from None


def to_trace(
    trace_or_attention: Any,
    tokens: Any = None,
    sentence_b_start: Any = None,
    *,
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Any = None,
    decoder_tokens: Any = None,
    model_name: str | None = None,
) -> Trace:
    """A Trace as given, or built from BertViz's arguments (attention tuple + token strings).

    ``model_name`` titles a trace built from tensors (default "attention (from tensors)").
    """
    if isinstance(trace_or_attention, Trace):
        if tokens is not None or encoder_attention is not None or decoder_attention is not None:
            raise InputError("pass either a Trace or attention with tokens, not both")
        return trace_or_attention
    if trace_or_attention is None and encoder_attention is None and decoder_attention is None:
        raise InputError("pass a Trace, or attention (one tensor per layer, as the model returns) with tokens")
    try:
        return Trace.from_attentions(
            trace_or_attention,
            None if tokens is None else list(tokens),
            _as_int(sentence_b_start, "sentence_b_start"),
            encoder_attention=encoder_attention,
            decoder_attention=decoder_attention,
            cross_attention=cross_attention,
            encoder_tokens=None if encoder_tokens is None else list(encoder_tokens),
            decoder_tokens=None if decoder_tokens is None else list(decoder_tokens),
            **({"model_name": model_name} if model_name else {}),
        )
    except ValueError as err:
        raise InputError(str(err)) from None


def _options(
    *,
    layer: Any = None,
    heads: Any = None,
    include_layers: Any = None,
    include_heads: Any = None,
    stack: str | None = None,
    query_index: Any = 0,
    theme: Theme = "dark",
    index_base: int = 0,
    hide_special: bool = False,
    measure: str = "attention",
) -> ViewOptions:
    if not isinstance(measure, str):
        raise InputError(f"measure must be a name such as 'rollout', got {type(measure).__name__}")
    return ViewOptions(
        layer=_as_int(layer, "layer"),
        heads=_as_indices(heads, "heads"),
        include_layers=_as_indices(include_layers, "include_layers"),
        include_heads=_as_indices(include_heads, "include_heads"),
        stack=stack,
        query_index=_as_int(query_index, "query_index") or 0,
        theme=theme,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )


def _html_action(value: str) -> None:
    if value not in ("view", "return"):
        raise InputError(f"html_action must be 'view' or 'return', got {value!r} (both return the view object)")
