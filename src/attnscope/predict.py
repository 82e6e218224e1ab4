"""What the model predicts, and how its attention changes, when tokens are masked: :func:`predict`.

One forward pass through a model loaded with its LM head (``attnscope.load(..., lm_head=True)``) gives both
the trace of the (edited) input and the model's predictions: for a masked LM the top-k tokens at each
``[MASK]``, for a decoder (or the decoder of an encoder-decoder) the top-k tokens after the text's last token.
Editing: the tokens named by ``mask`` become the tokenizer's mask token where it has one, and are removed
otherwise. ``logit_lens=True`` also reads every layer through the model's own final norm and output head
(nostalgebraist's "logit lens"): what the model would predict if it stopped after that layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.errors import InputError, UnsupportedModelError
from attnscope.loading import ModelHandle
from attnscope.tokens import Tokens, display_form
from attnscope.traces import Trace
from attnscope.tracing import _encode, _Encoded, _is_byte_level, _trace_encoded

if TYPE_CHECKING:
    import torch

LENS = "logit lens"
"""How per-layer predictions are marked: each layer read through the final norm and head (not trained for it)."""


@dataclass(frozen=True)
class Candidate:
    """One predicted token and its probability (softmax of the model's logits)."""

    token: str
    token_id: int
    prob: float


@dataclass(frozen=True)
class PositionPrediction:
    """The top-k tokens predicted at one position of the edited trace (and per layer, under the logit lens)."""

    position: int
    """Index in the edited trace (its target tokens for an encoder-decoder): a mask token (masked LM), or the
    last token that is not a special one the tokenizer added (next-token prediction)."""
    token: str
    """The token the model saw at ``position`` (the mask token, or the last token)."""
    top: tuple[Candidate, ...]
    layers: tuple[tuple[Candidate, ...], ...] | None = None
    """Per layer (0-based), the top-k of that layer's output through the final norm and head; None without lens."""


@dataclass(frozen=True)
class Edit:
    """One masked token: its index and token in the original trace, and what replaced it (None: removed)."""

    index: int
    token: str
    now: str | None


@dataclass(eq=False)
class Prediction:
    """The trace of the edited input, the original trace, and the model's predictions on the edited input."""

    trace: Trace
    original: Trace
    kind: str | None
    """"masked" (top-k at each mask token), "next" (the token after the last one), or None (no LM head)."""
    predictions: list[PositionPrediction]
    edits: list[Edit]
    lens: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: kind, edits and predictions (probabilities as floats); per-layer ones marked "logit lens"."""
        return {
            "kind": self.kind,
            "lens": LENS if self.lens else None,
            "edits": [{"index": e.index, "token": e.token, "now": e.now} for e in self.edits],
            "predictions": [
                {
                    "position": p.position,
                    "token": p.token,
                    "top": _candidates_json(p.top),
                    "layers": [_candidates_json(layer) for layer in p.layers] if p.layers is not None else None,
                }
                for p in self.predictions
            ],
        }


def _candidates_json(candidates: Iterable[Candidate]) -> list[dict[str, Any]]:
    return [{"token": c.token, "prob": c.prob} for c in candidates]


def predict(
    handle: ModelHandle,
    text: str,
    text_pair: str | None = None,
    *,
    mask: Iterable[int] = (),
    k: int = 5,
    logit_lens: bool = False,
    qk: bool = False,
    values: bool = False,
    target: str | None = None,
    truncation: bool = False,
) -> Prediction:
    """Mask tokens of ``text`` (and ``text_pair``), trace the edited input and read the model's top-k predictions.

    ``mask`` holds token indices of the unedited trace (special tokens included, [CLS] is 0 for BERT). The
    edited input is traced in the same forward pass that gives the predictions; ``qk``/``values`` capture
    as in :func:`attnscope.trace`. A model without an LM head (``handle.lm_kind`` None) gives kind None and
    no predictions. Encoder-decoder models take the decoder's text as ``target`` (``mask`` indexes the source);
    they predict the token after it. ``truncation`` as in :func:`attnscope.trace`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, got {k!r}")
    if logit_lens and handle.lm_kind is not None:
        _lens_spec(handle)  # unsupported model type: fail before the forward pass
    encoded = _encode(handle, text, text_pair, target, truncation)
    indices = _mask_indices(mask, encoded.tokens)
    edited, edits = _edit(handle, encoded, indices)
    kind = _KINDS[handle.lm_kind]
    positions = _positions(handle, edited, kind)
    with _layer_outputs(handle, enabled=logit_lens and bool(positions)) as hidden:
        trace, outputs = _trace_encoded(handle, edited, qk=qk, values=values)
    predictions = _read(handle, trace, outputs, positions, hidden, k) if positions else []
    del outputs, hidden  # free the logits before the second pass
    original = _trace_encoded(handle, encoded)[0] if edits else trace
    return Prediction(
        trace=trace, original=original, kind=kind, predictions=predictions, edits=edits, lens=logit_lens and bool(kind)
    )


_KINDS: dict[str | None, str | None] = {"masked": "masked", "causal": "next", "seq2seq": "next", None: None}


# -- editing ---------------------------------------------------------------------------------------


def _mask_indices(mask: Iterable[int], tokens: Tokens) -> list[int]:
    """Sorted, distinct token indices to mask; InputError for non-integers, out-of-range and special tokens."""
    if isinstance(mask, (str, bytes)):
        raise InputError("mask must be a list of token indices, not text")
    try:
        given = list(mask)
    except TypeError:
        raise InputError(f"mask must be a list of token indices, got {type(mask).__name__}") from None
    n = len(tokens)
    for index in given:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InputError(f"mask must hold token indices (whole numbers), got {index!r}")
        if not 0 <= index < n:
            raise InputError(f"cannot mask token {index}: the input has {n} tokens (indices 0 to {n - 1})")
        if tokens.special[index]:
            raise InputError(
                f"cannot mask token {index} ({tokens.display[index]}): it is a special token the tokenizer adds"
            )
    return sorted({int(i) for i in given})


def _edit(handle: ModelHandle, encoded: _Encoded, indices: list[int]) -> tuple[_Encoded, list[Edit]]:
    """The input with the tokens at ``indices`` replaced by the mask token, or removed if there is none."""
    if not indices:
        return encoded, []
    tok = handle.tokenizer
    mask_id, mask_token = getattr(tok, "mask_token_id", None), getattr(tok, "mask_token", None)
    tokens = encoded.tokens
    if isinstance(mask_id, int) and isinstance(mask_token, str):
        edits = [Edit(i, tokens.display[i], mask_token) for i in indices]
        ids = list(encoded.input_ids)
        raw, display = list(tokens.raw), list(tokens.display)
        for i in indices:
            ids[i], raw[i], display[i] = mask_id, mask_token, mask_token
        # The mask token stands where the text it hides was: same segment, word and character offsets.
        new_tokens = replace(tokens, raw=tuple(raw), display=tuple(display))
        return replace(encoded, input_ids=ids, tokens=new_tokens), edits
    edits = [Edit(i, tokens.display[i], None) for i in indices]
    removed = set(indices)
    keep = [i for i in range(len(tokens)) if i not in removed]
    if tokens.special[keep].all():
        raise InputError("masking these tokens would remove all the text; keep at least one token")
    words = tokens.word_ids[keep]
    renumbered = np.unique(words[words >= 0], return_inverse=True)[1].astype(np.int32)
    words = words.copy()
    words[words >= 0] = renumbered  # word numbers stay 0..n-1 with no gap where a whole word went
    new_tokens = Tokens(
        raw=tuple(tokens.raw[i] for i in keep),
        display=tuple(tokens.display[i] for i in keep),
        special=tokens.special[keep],
        segment=tokens.segment[keep],
        word_ids=words,
        offsets=tokens.offsets[keep],
        texts=tokens.texts,
    )
    types = [encoded.token_type_ids[i] for i in keep] if encoded.token_type_ids is not None else None
    ids = [encoded.input_ids[i] for i in keep]
    return replace(encoded, input_ids=ids, token_type_ids=types, tokens=new_tokens), edits


def _positions(handle: ModelHandle, edited: _Encoded, kind: str | None) -> list[int]:
    """Where to read predictions: each mask token (masked LM) or the last position (next token)."""
    if kind == "masked":
        mask_id = getattr(handle.tokenizer, "mask_token_id", None)
        return [i for i, t in enumerate(edited.input_ids) if t == mask_id] if isinstance(mask_id, int) else []
    if kind == "next":
        # The last token of the text: the tokenizer's closing [SEP] or </s> after it predicts nothing useful.
        side = edited.target_tokens if handle.info.is_encoder_decoder else edited.tokens
        assert side is not None
        text = np.flatnonzero(~side.special)
        return [int(text[-1]) if text.size else len(side) - 1]
    return []


# -- reading the head ------------------------------------------------------------------------------


def _read(
    handle: ModelHandle, trace: Trace, outputs: Any, positions: list[int], hidden: list[Any], k: int
) -> list[PositionPrediction]:
    """Top-k of the softmax of the logits at each position; with layer outputs, also through the logit lens."""
    logits = outputs.logits[0, positions].float()
    lens = _lens_logits(handle, hidden, positions) if hidden else None
    seen = trace.target_tokens if trace.target_tokens is not None else trace.tokens
    top_k = min(k, int(logits.shape[-1]))
    out = []
    for j, position in enumerate(positions):
        layers = tuple(_top(handle, layer[j], top_k) for layer in lens) if lens is not None else None
        out.append(PositionPrediction(position, seen.display[position], _top(handle, logits[j], top_k), layers))
    return out


def _top(handle: ModelHandle, logits: torch.Tensor, k: int) -> tuple[Candidate, ...]:
    probs = logits.float().softmax(-1)
    values, ids = probs.topk(k)
    return tuple(
        Candidate(token_label(handle, int(i)), int(i), float(p))
        for p, i in zip(values.tolist(), ids.tolist(), strict=True)
    )


def token_label(handle: ModelHandle, token_id: int) -> str:
    """A vocabulary entry as the views label tokens: markers removed, bytes decoded, "##" kept on continuations."""
    tok = handle.tokenizer
    raw = str(tok.convert_ids_to_tokens(token_id))
    if token_id in set(getattr(tok, "all_special_ids", ())):
        return raw
    shown = display_form(raw, byte_level=_is_byte_level(tok))
    return "##" + shown if raw.startswith("##") and len(raw) > 2 else shown


# -- the logit lens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LensSpec:
    """Where a family's final norm (before the head; None if it has none) and output head live."""

    layers: str
    """Dotted path, in the base model, of the list of layers whose outputs are read."""
    norm: str | None
    """Dotted path, in the base model, of the norm applied after the last layer."""
    head: tuple[str, ...]
    """Modules of the LM model applied in order to turn a hidden state into logits."""


_GPT2 = _LensSpec("h", "ln_f", ("lm_head",))
_LLAMA = _LensSpec("layers", "norm", ("lm_head",))
_BERT = _LensSpec("encoder.layer", None, ("cls",))
_ROBERTA = _LensSpec("encoder.layer", None, ("lm_head",))
LENSES: dict[str, _LensSpec] = {
    "bert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "electra": _LensSpec("encoder.layer", None, ("generator_predictions", "generator_lm_head")),
    "distilbert": _LensSpec(
        "transformer.layer", None, ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")
    ),
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}
"""Model type -> its logit-lens layout, as data (post-LN encoders have no final norm: each layer ends normed)."""


def _lens_spec(handle: ModelHandle) -> _LensSpec:
    spec = LENSES.get(handle.info.model_type)
    if spec is None or handle.lm_kind not in ("masked", "causal"):
        raise UnsupportedModelError(
            f"the logit lens is not available for {handle.name} ({type(handle.model).__name__}); it reads "
            f"masked and causal LMs of types {', '.join(sorted(LENSES))}. Predict without logit_lens"
        )
    return spec


@contextmanager
def _layer_outputs(handle: ModelHandle, *, enabled: bool) -> Iterator[list[Any]]:
    """Record every layer's output hidden state [1, T, D] during the forward pass; hooks removed on exit."""
    found: list[Any] = []
    if not enabled:
        yield found
        return
    spec = _lens_spec(handle)
    layers = handle.model.base_model.get_submodule(spec.layers)

    def keep(module: Any, args: Any, output: Any) -> None:
        found.append(output[0] if isinstance(output, tuple) else output)

    hooks = [layer.register_forward_hook(keep) for layer in layers.children()]
    try:
        yield found
    finally:
        for hook in hooks:
            hook.remove()


def _lens_logits(handle: ModelHandle, hidden: Sequence[Any], positions: list[int]) -> list[torch.Tensor]:
    """Each layer's output at ``positions`` through the model's final norm and head: [P, vocab] per layer."""
    import torch

    spec = _lens_spec(handle)
    if len(hidden) != handle.info.num_layers:
        raise UnsupportedModelError(
            f"{handle.name}: expected {handle.info.num_layers} layer outputs for the logit lens, saw {len(hidden)}"
        )
    norm = handle.model.base_model.get_submodule(spec.norm) if spec.norm else None
    head = [handle.model.get_submodule(name) for name in spec.head]
    out = []
    with torch.inference_mode():
        for state in hidden:
            x = state[:, positions]
            if norm is not None:
                x = norm(x)
            for module in head:
                x = module(x)
            out.append(x[0].float())
    return out
