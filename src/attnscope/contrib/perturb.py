"""Measures that run the model again: value zeroing (Mohebbi et al. 2023) and gradient × input.

Both take the handle that made the trace and re-encode the trace's own texts (an error if the tokens
differ, e.g. another tokenizer). Their cost is stated on each function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.adapters import SELF, StackPath, adapter_for
from attnscope.contrib._common import keep, pick_stack
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.traces import FloatArray, Trace

if TYPE_CHECKING:
    from torch import nn

    from attnscope.loading import ModelHandle
    from attnscope.tracing import _Encoded


class _StopForwardError(Exception):
    """Raised by a hook once the layer of interest has run: the rest of the model is not needed."""


def value_zeroing(handle: ModelHandle, trace: Trace, stack: str | None = None, *, batch_size: int = 64) -> FloatArray:
    """Value zeroing: C[l, i, j] = 1 - cos(x_i, x_i with token j's value zeroed in layer l), rows summing to 1.

    Mohebbi et al. 2023: in layer l only, every head's value vector of key j is set to 0; the layer's
    output representation of each position i is compared with the unaltered one, and each row is
    normalised to sum 1. float32 [L, Q, K]. Cost: one forward pass per key token per layer, batched
    ``batch_size`` copies at a time and stopped right after layer l, so about K·(L+1)/2 full forward
    passes' worth of compute (K = keys, L = layers) on top of one clean pass.
    """
    import torch

    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    chosen = pick_stack(trace, stack, "value_zeroing")
    layers, path = _layers(handle, chosen)
    adapter = adapter_for(handle.info.model_type)
    if not path.attention:
        raise UnsupportedModelError(
            f"value zeroing compares each layer's output, but the {adapter.family} adapter knows only the "
            f"attention modules of {handle.info.model_type} (its layers are split over several lists); use "
            "norms_summed() or gradient_x_input() for this model"
        )
    inputs = _inputs(handle, trace)
    clean: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, a, out: clean.append(_hidden(out))) for layer in layers]
    try:
        with torch.no_grad():
            handle.model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    num_layers, _, q_len, k_len = trace.attention[chosen].shape
    scores = np.zeros((num_layers, q_len, k_len), dtype=np.float64)
    for index, layer in enumerate(layers):
        attention = _module(layer, path.attention)
        value = _module(attention, adapter.query if adapter.fused else adapter.value)
        for start in range(0, k_len, batch_size):
            keys = torch.arange(start, min(start + batch_size, k_len), device=handle.device)
            zeroed = _zeroing_hook(keys, fused=adapter.fused)
            caught: list[torch.Tensor] = []

            def stop(module: nn.Module, args: Any, out: Any, caught: list[torch.Tensor] = caught) -> None:
                caught.append(_hidden(out))
                raise _StopForwardError

            batch = {k: _repeat(v, len(keys)) for k, v in inputs.items()}
            with _hooked(value.register_forward_hook(zeroed)), _hooked(layer.register_forward_hook(stop)):
                try:
                    with torch.no_grad():
                        handle.model(**batch)
                except _StopForwardError:
                    pass
            changed = caught[0][:, :q_len].float()
            base = clean[index][0, :q_len].float()
            cos = torch.nn.functional.cosine_similarity(changed, base[None].expand_as(changed), dim=-1)  # [B, Q]
            scores[index, :, start : start + len(keys)] = (1.0 - cos).T.cpu().double().numpy()
    scores = np.maximum(scores, 0.0)
    sums = scores.sum(axis=-1, keepdims=True)
    scores = np.divide(scores, sums, out=np.zeros_like(scores), where=sums > 0)
    return keep(trace, "value_zeroing", chosen, scores, {"batch_size": batch_size})


def gradient_x_input(
    handle: ModelHandle, trace: Trace, stack: str | None = None, *, batch_size: int = 32
) -> FloatArray:
    """Gradient × input: ‖(∂h_i/∂e_j)·e_j‖ for each output position i and input token j, float32 [Q, K].

    h is the stack's last hidden states, e the input embeddings (the encoder's for "encoder" and
    "cross", the decoder's for "decoder"). The first-order contribution of e_j to h_i is the
    Jacobian-vector product J_ij·e_j; one forward-mode pass per input token computes it for every i,
    batched ``batch_size`` tokens at a time. Cost: one forward-mode pass (a few forward passes' work) per
    input token; benchmarks/results/faithfulness.md has measured figures. A reference saliency, not an
    attention measure: it has no per-layer rows.
    """
    import torch
    import torch.autograd.forward_ad as fwad

    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    chosen = pick_stack(trace, stack, "gradient_x_input")
    inputs = _inputs(handle, trace)
    decoder_side = chosen == "decoder" and handle.info.is_encoder_decoder
    ids_name, embeds_name = (
        ("decoder_input_ids", "decoder_inputs_embeds") if decoder_side else ("input_ids", "inputs_embeds")
    )
    ids = inputs.pop(ids_name)
    with torch.no_grad():
        embeds = handle.model.get_input_embeddings()(ids)  # [1, K, D]
    _, _, q_len, k_len = trace.attention[chosen].shape
    scores = np.zeros((q_len, k_len), dtype=np.float64)
    for start in range(0, k_len, batch_size):
        keys = torch.arange(start, min(start + batch_size, k_len), device=handle.device)
        n = len(keys)
        primal = embeds.expand(n, -1, -1).contiguous()
        tangent = torch.zeros_like(primal)
        tangent[torch.arange(n), keys] = embeds[0, keys]
        batch = {k: _repeat(v, n) for k, v in inputs.items()}
        with torch.no_grad(), fwad.dual_level():
            outputs = handle.model(**batch, **{embeds_name: fwad.make_dual(primal, tangent)}, return_dict=True)
            hidden = (
                outputs.encoder_last_hidden_state
                if chosen == "encoder" and handle.info.is_encoder_decoder
                else (outputs.last_hidden_state)
            )
            jvp = fwad.unpack_dual(hidden).tangent
        if jvp is None:
            raise InputError("the model's output does not depend on its input embeddings in forward mode")
        scores[:, start : start + n] = jvp[:, :q_len].float().norm(dim=-1).T.cpu().double().numpy()
    return keep(trace, "gradient_x_input", chosen, scores, {"batch_size": batch_size})


# -- helpers ---------------------------------------------------------------------------------------


def _inputs(handle: ModelHandle, trace: Trace) -> dict[str, Any]:
    """The model inputs of the trace's texts (batch of one), checked to give the trace's own tokens."""
    from attnscope.tracing import _encode, _model_inputs

    texts = trace.tokens.texts
    target = trace.target_tokens.texts[0] if trace.target_tokens is not None and trace.target_tokens.texts else None
    if not texts:
        raise InputError(
            "this trace holds no source text (built from token strings?); re-trace it with attnscope.trace"
        )
    encoded: _Encoded = _encode(handle, texts[0], texts[1] if len(texts) > 1 else None, target, trace.truncated)
    same = encoded.tokens.raw == trace.tokens.raw
    if trace.target_tokens is not None:
        same = same and encoded.target_tokens is not None and encoded.target_tokens.raw == trace.target_tokens.raw
    if not same:
        raise InputError(
            f"{handle.name} does not tokenize the trace's text into the trace's tokens: pass the model "
            f"that made the trace ({trace.model.name})"
        )
    inputs = _model_inputs(handle, [encoded])
    inputs.pop("attention_mask", None)  # one unpadded example: nothing to mask
    inputs.pop("decoder_attention_mask", None)
    return inputs


def _layers(handle: ModelHandle, stack: str) -> tuple[list[nn.Module], StackPath]:
    """The layer modules of a stack and the adapter's path description for them."""
    adapter = adapter_for(handle.info.model_type)
    key = stack if stack in adapter.stacks else SELF
    path = adapter.stacks[key]
    base = getattr(handle.model, "base_model", handle.model)
    for root in (base, handle.model):
        try:
            return list(root.get_submodule(path.layers).children()), path
        except AttributeError:
            continue
    raise InputError(
        f"{type(handle.model).__name__} has no {path.layers} where the {adapter.family} adapter expects it"
    )


def _module(parent: nn.Module, path: str) -> nn.Module:
    return parent.get_submodule(path) if path else parent


def _hidden(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _repeat(value: Any, n: int) -> Any:
    import torch

    return value.expand(n, *value.shape[1:]) if isinstance(value, torch.Tensor) else value


def _zeroing_hook(keys: Any, *, fused: bool) -> Any:
    """Forward hook for a value projection: copy b of the batch gets token keys[b]'s values set to 0."""
    import torch

    def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        rows = torch.arange(len(keys), device=out.device)
        if fused:  # GPT-2's c_attn: [queries | keys | values]
            width = out.shape[-1] // 3
            out[rows, keys, 2 * width :] = 0
        else:
            out[rows, keys] = 0
        return out

    return hook


@contextmanager
def _hooked(handle: Any) -> Iterator[None]:
    try:
        yield
    finally:
        handle.remove()
