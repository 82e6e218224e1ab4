"""The view functions: ``head_view``, ``model_view``, ``neuron_view``, ``heatmap_view``, ``contribution_view``
and ``page``.

The first three take BertViz's call shapes too, so its notebooks run with only the import changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views.measures import contribution_measure
from attnscope.views.objects import View, _html_action, _options, to_trace
from attnscope.views.options import VIEW_KINDS, Theme
from attnscope.views.payload import Precision


def head_view(
    trace_or_attention: Any = None,
    tokens: Sequence[str] | None = None,
    sentence_b_start: Any = None,
    prettify_tokens: bool = True,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
    include_layers: Sequence[int] | None = None,
    html_action: str = "view",
    *,
    stack: str | None = None,
    theme: Theme = "dark",
    index_base: int = 0,
    hide_special: bool = False,
    precision: Precision = "uint8",
    model_name: str | None = None,
    measure: str = "attention",
) -> View:
    """Lines from each token to the tokens it attends to, one colour per head (BertViz's ``head_view``).

    ``prettify_tokens`` is accepted for BertViz compatibility (tokens are always shown in readable
    form); ``html_action`` "view" or "return" both return the view object. ``model_name`` titles a view
    made from attention tensors (which do not say which model made them). ``measure``: show a contribution
    measure instead of attention ("rollout", "norms", ...; see :mod:`attnscope.views.measures`).
    """
    _html_action(html_action)
    trace = to_trace(
        trace_or_attention,
        tokens,
        sentence_b_start,
        encoder_attention=encoder_attention,
        decoder_attention=decoder_attention,
        cross_attention=cross_attention,
        encoder_tokens=encoder_tokens,
        decoder_tokens=decoder_tokens,
        model_name=model_name,
    )
    if layer is None and include_layers:
        layer = next(iter(include_layers))
    opts = _options(
        layer=layer,
        heads=heads,
        include_layers=include_layers,
        stack=stack,
        theme=theme,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )
    return View("head", trace, opts, precision=precision)


def model_view(
    trace_or_attention: Any = None,
    tokens: Sequence[str] | None = None,
    sentence_b_start: Any = None,
    prettify_tokens: bool = True,
    display_mode: Theme = "dark",
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    html_action: str = "view",
    *,
    stack: str | None = None,
    index_base: int = 0,
    hide_special: bool = False,
    precision: Precision = "uint8",
    model_name: str | None = None,
    measure: str = "attention",
) -> View:
    """Every layer x head as a thumbnail; click one to open it large (BertViz's ``model_view``).

    ``model_name`` titles a view made from attention tensors; ``measure`` shows a contribution measure
    instead of attention (see :mod:`attnscope.views.measures`).
    """
    _html_action(html_action)
    trace = to_trace(
        trace_or_attention,
        tokens,
        sentence_b_start,
        encoder_attention=encoder_attention,
        decoder_attention=decoder_attention,
        cross_attention=cross_attention,
        encoder_tokens=encoder_tokens,
        decoder_tokens=decoder_tokens,
        model_name=model_name,
    )
    opts = _options(
        include_layers=include_layers,
        include_heads=include_heads,
        stack=stack,
        theme=display_mode,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )
    return View("model", trace, opts, precision=precision)


def neuron_view(
    trace_or_model: Any,
    *args: Any,
    tokenizer: Any = None,
    sentence_a: str | None = None,
    sentence_b: str | None = None,
    layer: int | None = None,
    head: int | None = None,
    query_index: int = 0,
    display_mode: Theme | None = None,
    theme: Theme = "dark",
    stack: str | None = None,
    target: str | None = None,
    index_base: int = 0,
    precision: Precision = "uint8",
) -> View:
    """Query, key, q×k, dot products, scaling, bias and softmax of one head, for a chosen query token.

    Takes a Trace made with ``qk=True``, or any Hugging Face model with its tokenizer:
    ``neuron_view(model, tokenizer, sentence_a, sentence_b, layer, head)``. BertViz's
    ``show(model, model_type, tokenizer, sentence_a, sentence_b, display_mode, layer, head)`` works
    too (the model type is not needed and is ignored).
    """
    positional = list(args)
    names: tuple[str, ...] = ("tokenizer", "sentence_a", "sentence_b", "layer", "head")
    if positional and isinstance(positional[0], str) and not isinstance(trace_or_model, Trace):
        positional.pop(0)  # BertViz's model_type; its positional order puts display_mode before layer
        names = ("tokenizer", "sentence_a", "sentence_b", "display_mode", "layer", "head")
    if len(positional) > len(names):
        raise InputError(f"neuron_view takes at most {len(names) + 1} positional arguments")
    given = dict(zip(names, positional, strict=False))
    tokenizer = given.get("tokenizer", tokenizer)
    sentence_a = given.get("sentence_a", sentence_a)
    sentence_b = given.get("sentence_b", sentence_b)
    display_mode = given.get("display_mode", display_mode)
    layer = given.get("layer", layer)
    head = given.get("head", head)
    if isinstance(trace_or_model, Trace):
        trace = trace_or_model
    else:
        trace = _trace_model(trace_or_model, tokenizer, sentence_a, sentence_b, target)
    opts = _options(
        layer=layer or 0,
        heads=[head or 0],
        stack=stack,
        query_index=query_index,
        theme=display_mode or theme,
        index_base=index_base,
    )
    return View("neuron", trace, opts, precision=precision)


def _trace_model(model: Any, tokenizer: Any, sentence_a: Any, sentence_b: Any, target: str | None) -> Trace:
    from attnscope.loading import ModelHandle
    from attnscope.tracing import trace as run_trace

    if tokenizer is None or not callable(tokenizer):
        raise InputError("neuron_view(model, tokenizer, sentence_a, ...) needs the model's tokenizer")
    if not isinstance(sentence_a, str):
        raise InputError("neuron_view needs sentence_a, the text to run the model on")
    if not hasattr(model, "config"):
        raise InputError(f"expected a Hugging Face model or an attnscope Trace, got {type(model).__name__}")
    handle = ModelHandle.from_model(model, tokenizer)
    return run_trace(handle, sentence_a, sentence_b, target=target, qk=True)


def heatmap_view(
    trace: Trace,
    layer: int = 0,
    head: int = 0,
    *,
    stack: str | None = None,
    theme: Theme = "dark",
    index_base: int = 0,
    hide_special: bool = False,
    precision: Precision = "uint8",
    measure: str = "attention",
) -> View:
    """The query x key attention matrix of one head, for inputs where lines become unreadable.

    ``measure``: show a contribution measure instead of attention (see :mod:`attnscope.views.measures`).
    """
    opts = _options(
        layer=layer,
        heads=[head],
        stack=stack,
        theme=theme,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )
    return View("heatmap", to_trace(trace), opts, precision=precision)


def contribution_view(
    trace: Trace,
    measure: str = "rollout",
    position: int = 0,
    *,
    stack: str | None = None,
    theme: Theme = "dark",
    index_base: int = 0,
    hide_special: bool = False,
) -> View:
    """For output ``position``, which input tokens reach it, layer by layer: one stacked bar per layer of a
    layered, head-less measure (rollout, norms_summed, mixing, value_zeroing, flow; see attnscope.views.measures)."""
    opts = _options(
        stack=stack,
        query_index=position,
        theme=theme,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )
    trace = to_trace(trace)
    contribution_measure(trace, measure, opts.stack or trace.main_stack, strict=True)
    return View("contribution", trace, opts)


def page(
    trace: Trace,
    views: Sequence[str] | None = None,
    *,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    stack: str | None = None,
    query_index: int = 0,
    theme: Theme = "dark",
    index_base: int = 0,
    hide_special: bool = False,
    precision: Precision = "uint8",
    measure: str = "attention",
) -> View:
    """Several views of one trace as tabs on one page (default: head, model, neuron if q/k, heatmap, contribution).

    ``measure``: the contribution measure the page starts with instead of attention ("rollout", "norms", ...;
    see :mod:`attnscope.views.measures`); its selector switches between it, attention and any measure
    already kept on the trace.
    """
    trace = to_trace(trace)
    if views is not None:
        views = [views] if isinstance(views, str) else list(views)
        bad = [v for v in views if v not in VIEW_KINDS]
        if bad or not views:
            raise InputError(f"unknown view(s) {bad or views}; choose from {', '.join(VIEW_KINDS)}")
    opts = _options(
        layer=layer,
        heads=heads,
        include_layers=include_layers,
        include_heads=include_heads,
        stack=stack,
        query_index=query_index,
        theme=theme,
        index_base=index_base,
        hide_special=hide_special,
        measure=measure,
    )
    return View("page", trace, opts, views=tuple(views or ()), precision=precision)
