"""The one table of views: name, title, what each needs from a trace, its payload builder and static drawer.

Every list of view kinds derives from :data:`VIEWS` (``VIEW_KINDS``, the CLI's ``--views``, a page's
default tabs, static export, the generated TypeScript ``ViewName``). Adding a view is one module here
(``attnscope/views/draw/NAME.py``), one TypeScript module (``frontend/src/NAME.ts``), one line in
:data:`VIEWS` and one in ``frontend/src/registry.ts`` (see ARCHITECTURE.md).

Builders and drawers are named as ``"module:function"`` and imported only when used, so this table
imports nothing heavy (matplotlib is needed only to draw).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnscope.traces import Trace


@dataclass(frozen=True)
class Need:
    """A kind of data a view needs from a trace, and how to tell a user who lacks it what to do."""

    name: str
    how: str  # what to do when a trace lacks it

    def missing(self, trace: Trace, stack: str) -> bool:
        """True when ``trace`` lacks this data for ``stack``."""
        if self.name == "attention":
            return stack not in trace.attention
        if self.name == "qk":
            return stack not in trace.qk
        if self.name == "layered":  # rollout (and every layered measure) maps a stack's tokens to themselves
            return stack not in ("encoder", "decoder")
        raise ValueError(f"no check for need {self.name!r}")  # a new need adds its check here


# The data a view can need. A new measure every view can show (e.g. contributions) is one entry here,
# its check in Need.missing, and a payload section (see ARCHITECTURE.md).
NEEDS: dict[str, Need] = {
    "attention": Need("attention", "trace the model (every trace has attention)"),
    "qk": Need(
        "qk",
        "trace with qk=True (CLI: attnscope view ... --views neuron captures them), "
        "or call neuron_view(model, tokenizer, ...)",
    ),
    "layered": Need(
        "layered",
        "choose a self-attention stack (stack='encoder' or 'decoder'): contributions through layers are "
        "defined where every layer maps the same tokens to themselves",
    ),
}


@dataclass(frozen=True)
class ViewSpec:
    """One view kind.

    ``needs``: keys of :data:`NEEDS`; ``builder``: ``"module:function"`` returning the extra payload section
    ``payload[name]`` this view alone reads (None: it reads only the shared attention stacks);
    ``drawer``: ``"module:function"`` drawing its static picture, ``draw(trace, resolved, style) -> Figure``.

    ``subject``: what the view shows. "trace" (the default): one Trace, as above. Any other value names
    a result of an analysis (e.g. "atlas": a :class:`~attnscope.heads.atlas.HeadAtlas`); such a view is
    never a tab of a trace's page; its object (e.g. :class:`~attnscope.views.atlas.AtlasView`) calls
    ``builder(subject, options, precision, traces) -> Payload`` for the whole payload (its section under
    ``payload[name]``, the traces it links to as ordinary head-view payloads inside), and its drawer is
    ``draw(subject, options, style) -> Figure``.
    """

    name: str
    title: str
    needs: tuple[str, ...]
    drawer: str
    builder: str | None = None
    subject: str = "trace"

    def draw_function(self) -> Callable[..., Any]:
        """The static drawer, imported now."""
        return _load(self.drawer)

    def build_function(self) -> Callable[..., Any] | None:
        """The payload builder, imported now (None when the view needs no section of its own)."""
        return _load(self.builder) if self.builder else None


VIEWS: dict[str, ViewSpec] = {
    spec.name: spec
    for spec in (
        ViewSpec("head", "Head view", ("attention",), "attnscope.views.draw.head:draw"),
        ViewSpec("model", "Model view", ("attention",), "attnscope.views.draw.model:draw"),
        ViewSpec(
            "neuron",
            "Neuron view",
            ("attention", "qk"),
            "attnscope.views.draw.neuron:draw",
            builder="attnscope.views.payload:neuron_section",
        ),
        ViewSpec("heatmap", "Heatmap", ("attention",), "attnscope.views.draw.heatmap:draw"),
        ViewSpec(
            "contribution",
            "Contribution",
            ("attention", "layered"),
            "attnscope.views.draw.contribution:draw",
            builder="attnscope.views.measures:contribution_section",
        ),
        ViewSpec(
            "atlas",
            "Head atlas",
            (),
            "attnscope.views.draw.atlas:draw",
            builder="attnscope.views.atlas:atlas_payload",
            subject="atlas",
        ),
        ViewSpec(
            "compare",
            "Comparison",
            (),
            "attnscope.views.draw.compare:draw",
            builder="attnscope.views.compare:compare_payload",
            subject="compare",
        ),
    )
}
# The views of one trace (a page's tabs, the CLI's --views); views of other subjects are made by their own function.
VIEW_KINDS: tuple[str, ...] = tuple(name for name, spec in VIEWS.items() if spec.subject == "trace")


def view_spec(name: str) -> ViewSpec:
    """The registered view of a trace called ``name`` (an InputError naming the choices otherwise)."""
    from attnscope.errors import InputError

    if name not in VIEW_KINDS:
        raise InputError(f"unknown view {name!r}; choose from {', '.join(VIEW_KINDS)}")
    return VIEWS[name]


def check_views(views: Any) -> tuple[str, ...]:
    """A non-empty tuple of registered view names, or one clear InputError."""
    from attnscope.errors import InputError

    names = (views,) if isinstance(views, str) else tuple(views)
    bad = [v for v in names if v not in VIEW_KINDS]
    if bad or not names:
        raise InputError(f"unknown view(s) {bad or list(names)}; choose from {', '.join(VIEW_KINDS)}")
    return names


def available_views(trace: Trace) -> tuple[str, ...]:
    """The views a trace can show on its main stack, in registry order (a page's default tabs)."""
    return tuple(
        spec.name
        for spec in VIEWS.values()
        if spec.subject == "trace" and not any(NEEDS[need].missing(trace, trace.main_stack) for need in spec.needs)
    )


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function
