"""attnscope: see and measure what the attention heads of a Transformer do.

Importing the package is cheap: torch and transformers load only when a model is loaded.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from attnscope.errors import AttnscopeError
from attnscope.traces import QK, ModelInfo, Trace

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle, load
    from attnscope.tracing import trace, trace_many
    from attnscope.views import atlas_view, compare_view, head_view, heatmap_view, model_view, neuron_view

__version__ = "0.1.0"

# Public name -> module that defines it; those modules import torch, so they load on first use.
_LAZY = {
    "ModelHandle": "attnscope.loading",
    "load": "attnscope.loading",
    "trace": "attnscope.tracing",
    "trace_many": "attnscope.tracing",
    "head_view": "attnscope.views",
    "model_view": "attnscope.views",
    "neuron_view": "attnscope.views",
    "heatmap_view": "attnscope.views",
    "atlas_view": "attnscope.views",
    "compare_view": "attnscope.views",
}

__all__ = [
    "QK",
    "AttnscopeError",
    "ModelHandle",
    "ModelInfo",
    "Trace",
    "atlas_view",
    "compare_view",
    "head_view",
    "heatmap_view",
    "load",
    "model_view",
    "neuron_view",
    "trace",
    "trace_many",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
