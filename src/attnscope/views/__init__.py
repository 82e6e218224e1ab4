"""Interactive attention views (head, model, neuron, heatmap, contribution, atlas, comparison): offline HTML.

A view object has ``kind`` (one of ``VIEW_KINDS``, or "page" for tabs), ``trace`` (the Trace it
shows) and ``options`` (:class:`ViewOptions`); static export reads exactly these. The atlas view
(:func:`atlas_view`) shows a head atlas (``attnscope.heads.head_roles``) instead of one trace; the
comparison view (:func:`compare_view`) two traces and their difference.
"""

from __future__ import annotations

from attnscope.views.api import contribution_view, head_view, heatmap_view, model_view, neuron_view, page
from attnscope.views.atlas import AtlasView, atlas_view
from attnscope.views.compare import CompareView, compare_view
from attnscope.views.objects import View
from attnscope.views.options import VIEW_KINDS, ViewOptions

__all__ = [
    "VIEW_KINDS",
    "AtlasView",
    "CompareView",
    "View",
    "ViewOptions",
    "atlas_view",
    "compare_view",
    "contribution_view",
    "head_view",
    "heatmap_view",
    "model_view",
    "neuron_view",
    "page",
]
