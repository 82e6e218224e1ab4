"""What a view shows: the options a user gives (checked against a trace by :mod:`attnscope.views.resolve`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from attnscope.errors import InputError
from attnscope.views.registry import VIEW_KINDS

__all__ = ["VIEW_KINDS", "Theme", "ViewOptions"]
Theme = Literal["dark", "light"]


@dataclass(frozen=True)
class ViewOptions:
    """The choices a view starts with; all layer/head numbers here are 0-based.

    ``layer``/``heads``: the head view's and neuron/heatmap view's layer and selected heads (None = first
    layer / all heads); ``include_layers``/``include_heads``: the model view's grid (None = all);
    ``stack``: "encoder", "decoder" or "cross" (None = the trace's main stack); ``query_index``: the
    neuron view's query token; ``index_base``: how layers and heads are labelled (0 as BertViz, 1 as
    exBERT); ``hide_special``: drop attention to and from delimiter tokens and renormalise each row;
    ``measure``: what the views show, "attention" or a measure of :mod:`attnscope.views.measures`.
    """

    layer: int | None = None
    heads: tuple[int, ...] | None = None
    include_layers: tuple[int, ...] | None = None
    include_heads: tuple[int, ...] | None = None
    stack: str | None = None
    query_index: int = 0
    theme: Theme = "dark"
    index_base: int = 0
    hide_special: bool = False
    measure: str = "attention"

    def __post_init__(self) -> None:
        from attnscope.views.measures import check_measure

        check_measure(self.measure)
        if self.theme not in ("dark", "light"):
            raise InputError(f"theme must be 'dark' or 'light', got {self.theme!r}")
        if self.index_base not in (0, 1):
            raise InputError(f"index_base must be 0 (BertViz) or 1 (exBERT), got {self.index_base!r}")
        if self.stack is not None and self.stack not in ("encoder", "decoder", "cross"):
            raise InputError(f"stack must be 'encoder', 'decoder' or 'cross', got {self.stack!r}")
        for name in ("heads", "include_layers", "include_heads"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(v) for v in value))
