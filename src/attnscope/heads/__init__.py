"""Head atlas and head finder: what every head does over a corpus, and which heads answer a question.

The partial states (:class:`AtlasState`, :class:`PatternScores`, :class:`PairScores`) hold numpy sums
and counts only: ``update`` with a trace, ``merge`` two of them, ``finalize`` into a result whose
``to_json()`` is the report's content. :func:`head_roles` and :func:`find_heads` drive them in process.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from attnscope.heads.atlas import AtlasState, HeadAtlas
from attnscope.heads.find import NAMED_PATTERNS, FindResult, PatternScores
from attnscope.heads.pairs import PairScores

if TYPE_CHECKING:
    from attnscope.heads.api import find_heads, head_roles

__all__ = [
    "NAMED_PATTERNS",
    "AtlasState",
    "FindResult",
    "HeadAtlas",
    "PairScores",
    "PatternScores",
    "find_heads",
    "head_roles",
]


def __getattr__(name: str) -> Any:
    if name in ("head_roles", "find_heads"):  # they import the tracing machinery (torch) on first use
        value = getattr(import_module("attnscope.heads.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnscope.heads' has no attribute {name!r}")
