"""Static drawers, one module per view (``draw(trace, resolved, style) -> Figure``), and their shared helpers.

The registry (:mod:`attnscope.views.registry`) names each view's drawer; :mod:`attnscope.views.export`
runs it and encodes the figure as PNG or SVG.
"""
