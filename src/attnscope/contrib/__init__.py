"""Beyond raw attention: how much each input token contributes to each position, layer by layer.

Measures computed from a :class:`~attnscope.traces.Trace` (each kept on it, saved with it, under
``trace.contributions["<measure>.<stack>"]``):

- :func:`rollout` and :func:`flow` (Abnar & Zuidema 2020), from the attention alone;
- :func:`norms`, :func:`norms_summed` (Kobayashi et al. 2020), :func:`mixing` and :func:`mixing_ratio`
  (Kobayashi et al. 2021), from the values captured with ``trace(..., values=True)``;
- :func:`value_zeroing` (Mohebbi et al. 2023) and :func:`gradient_x_input`, which run the model again.
"""

from __future__ import annotations

from attnscope.contrib.graph import FLOW_MAX_TOKENS, flow, rollout
from attnscope.contrib.norms import mixing, mixing_ratio, norms, norms_summed
from attnscope.contrib.perturb import gradient_x_input, value_zeroing

__all__ = [
    "FLOW_MAX_TOKENS",
    "flow",
    "gradient_x_input",
    "mixing",
    "mixing_ratio",
    "norms",
    "norms_summed",
    "rollout",
    "value_zeroing",
]
