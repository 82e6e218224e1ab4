"""Running a model on text and capturing its attention: :func:`trace` and :func:`trace_many`."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnscope.errors import InputError, UnsupportedModelError
from attnscope.loading import ModelHandle
from attnscope.tokens import Tokens, display_form
from attnscope.traces import Trace


@dataclass
class _Encoded:
    """One tokenized example: model inputs as id lists, and the token fields for the trace."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    tokens: Tokens
    decoder_input_ids: list[int] | None = None
    target_tokens: Tokens | None = None
    truncated: bool = False


def trace(
    handle: ModelHandle,
    text: str,
    text_pair: str | None = None,
    *,
    target: str | None = None,
    qk: bool = False,
    values: bool = False,
    truncation: bool = False,
) -> Trace:
    """Run the model on one input and return the attention of every layer and head.

    ``text_pair`` makes a sentence pair (segments A and B). Encoder-decoder models take the source as
    ``text`` and the decoder's text as ``target``. ``qk=True`` also captures each head's query and key
    vectors (see :class:`attnscope.trace.QK`); ``values=True`` each head's value vectors and the output
    projection (see :class:`attnscope.traces.Values`), which :mod:`attnscope.contrib` needs. Text longer
    than the model allows is an error unless ``truncation=True``, which cuts it and marks the trace ``truncated``.
    """
    encoded = _encode(handle, text, text_pair, target, truncation)
    return _trace_encoded(handle, encoded, qk=qk, values=values)[0]


def _trace_encoded(
    handle: ModelHandle, encoded: _Encoded, *, qk: bool = False, values: bool = False
) -> tuple[Trace, Any]:
    """Trace one already tokenized (possibly edited) input; also returns the model's raw outputs (e.g. logits)."""
    if not qk and not values:
        traces, outputs = _forward(handle, [encoded])
        return traces[0], outputs
    from attnscope.qk import capture_qk

    with capture_qk(handle, values=values) as recorder:
        traces, outputs = _forward(handle, [encoded])
    result = traces[0]
    if qk:
        result.qk = recorder.collect()
    if values:
        result.values = recorder.collect_values()
    return result, outputs


def trace_many(
    handle: ModelHandle,
    texts: Iterable[str],
    *,
    text_pairs: Iterable[str | None] | None = None,
    targets: Iterable[str] | None = None,
    batch_size: int = 16,
    truncation: bool = False,
    progress: bool | None = None,
) -> Iterator[Trace]:
    """Trace a corpus in padded batches, yielding one Trace per text in input order.

    Each trace equals that of an unbatched :func:`trace` (to float rounding, 1e-5). Texts are grouped
    by length inside a window of a few batches to waste little compute on padding. A progress bar is
    shown on a terminal (``progress`` forces it on or off).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    items = list(texts)
    pairs = list(text_pairs) if text_pairs is not None else [None] * len(items)
    tgts: list[str | None] = list(targets) if targets is not None else [None] * len(items)
    if len(pairs) != len(items) or len(tgts) != len(items):
        raise InputError("texts, text_pairs and targets must have the same length")
    bar = _progress_bar(len(items), progress)
    window = batch_size * 8
    try:
        for start in range(0, len(items), window):
            chunk = [
                _encode(handle, items[i], pairs[i], tgts[i], truncation)
                for i in range(start, min(start + window, len(items)))
            ]
            order = sorted(range(len(chunk)), key=lambda i: len(chunk[i].input_ids))
            results: list[Trace | None] = [None] * len(chunk)
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                for i, tr in zip(idx, _run(handle, [chunk[i] for i in idx]), strict=True):
                    results[i] = tr
                if bar is not None:
                    bar.update(len(idx))
            for done in results:
                assert done is not None
                yield done
    finally:
        if bar is not None:
            bar.close()


# -- tokenization --------------------------------------------------------------------------------


def _encode(handle: ModelHandle, text: str, text_pair: str | None, target: str | None, truncation: bool) -> _Encoded:
    _check_text(text, "text")
    if text_pair is not None:
        _check_text(text_pair, "text_pair")
    if handle.info.is_encoder_decoder:
        if target is None:
            raise InputError(f"{handle.name} is an encoder-decoder model: pass the decoder's text as target=")
        if text_pair is not None:
            raise InputError("encoder-decoder models take a source text and a target, not a sentence pair")
        _check_text(target, "target")
    elif target is not None:
        raise InputError(f"{handle.name} has no decoder input; target= is only for encoder-decoder models")

    enc, truncated = _tokenize(handle, text, text_pair, truncation)
    encoded = _Encoded(
        input_ids=list(enc["input_ids"]),
        token_type_ids=list(enc["token_type_ids"]) if "token_type_ids" in enc and text_pair is not None else None,
        tokens=_tokens_from(handle, enc, (text,) if text_pair is None else (text, text_pair)),
        truncated=truncated,
    )
    if target is not None:
        tok = handle.tokenizer
        tgt = tok(text_target=target, return_offsets_mapping=True, return_special_tokens_mask=True)
        start_id = _decoder_start_id(handle)
        ids = [start_id, *tgt["input_ids"]]
        limit = handle.max_length
        if limit is not None and len(ids) > limit:
            if not truncation:
                raise _too_long("target", len(ids), limit, handle.name)
            ids = ids[:limit]
            encoded.truncated = True
        n = len(ids)
        fields = {
            "input_ids": ids,
            "special_tokens_mask": [1, *tgt["special_tokens_mask"]][:n],
            "offset_mapping": [(0, 0), *tgt["offset_mapping"]][:n],
        }
        words = [None, *tgt.word_ids()][:n]
        encoded.decoder_input_ids = ids
        encoded.target_tokens = _tokens_from(handle, fields, (target,), word_ids=words, sequence_ids=[0] * n)
    return encoded


def _check_text(text: Any, what: str) -> None:
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{what} is empty; give some text to trace")


def _too_long(what: str, n: int, limit: int, name: str) -> InputError:
    return InputError(
        f"the {what} is {n} tokens long but {name} accepts at most {limit}; shorten it, or pass "
        f"truncation=True (CLI: --truncate) to keep only the first {limit} tokens"
    )


def _tokenize(handle: ModelHandle, text: str, text_pair: str | None, truncation: bool) -> tuple[Any, bool]:
    tok = handle.tokenizer
    kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    enc = tok(text, text_pair, **kwargs)
    limit = handle.max_length
    if limit is None or len(enc["input_ids"]) <= limit:
        return enc, False
    if not truncation:
        raise _too_long("input", len(enc["input_ids"]), limit, handle.name)
    n = len(enc["input_ids"])
    warnings.warn(f"input of {n} tokens truncated to {limit} for {handle.name}", stacklevel=3)
    strategy = "longest_first" if text_pair is not None else True
    return tok(text, text_pair, truncation=strategy, max_length=limit, **kwargs), True


def _decoder_start_id(handle: ModelHandle) -> int:
    config = handle.model.config
    for source in (config, getattr(handle.model, "generation_config", None)):
        value = getattr(source, "decoder_start_token_id", None) if source is not None else None
        if isinstance(value, int):
            return value
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    raise UnsupportedModelError(f"{handle.name} names no decoder start token; cannot build decoder input")


def _tokens_from(
    handle: ModelHandle,
    enc: Any,
    texts: tuple[str, ...],
    *,
    word_ids: Sequence[int | None] | None = None,
    sequence_ids: Sequence[int | None] | None = None,
) -> Tokens:
    tok = handle.tokenizer
    ids = list(enc["input_ids"])
    raw = tuple(tok.convert_ids_to_tokens(ids))
    n = len(raw)
    special = np.asarray(enc["special_tokens_mask"], dtype=bool)[:n]
    words = list(word_ids if word_ids is not None else enc.word_ids())
    seqs = list(sequence_ids if sequence_ids is not None else enc.sequence_ids())
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int32).reshape(n, 2)

    segment = np.zeros(n, dtype=np.int8)
    word_arr = np.full(n, -1, dtype=np.int32)
    words_in_a = max((w for w, s in zip(words, seqs, strict=True) if w is not None and s == 0), default=-1) + 1
    current = 0
    for i in range(n):
        if seqs[i] is not None:
            current = int(seqs[i])
        segment[i] = current  # special tokens join the segment of the token before them
        if words[i] is not None and not special[i]:
            word_arr[i] = int(words[i]) + (words_in_a if seqs[i] == 1 else 0)
    if "token_type_ids" in enc and len(texts) == 2:
        segment = np.asarray(enc["token_type_ids"], dtype=np.int8)[:n]  # exactly what the model saw
    offsets[special] = -1
    byte_level = _is_byte_level(tok)
    display = tuple(r if special[i] else display_form(r, byte_level=byte_level) for i, r in enumerate(raw))
    return Tokens(
        raw=raw, display=display, special=special, segment=segment, word_ids=word_arr, offsets=offsets, texts=texts
    )


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(backend.decoder)


# -- the forward pass ----------------------------------------------------------------------------


def _model_inputs(handle: ModelHandle, batch: list[_Encoded]) -> dict[str, Any]:
    """The keyword arguments of one padded forward pass over a batch (ids, masks, token types)."""
    device = handle.device
    pad_id = _pad_id(handle)
    inputs: dict[str, Any] = _pad([e.input_ids for e in batch], pad_id, device, "input_ids")
    if all(e.token_type_ids is not None for e in batch):
        inputs["token_type_ids"] = _pad([e.token_type_ids or [] for e in batch], 0, device)["input_ids"]
    if handle.info.is_encoder_decoder:
        padded = _pad([e.decoder_input_ids or [] for e in batch], pad_id, device, "decoder_input_ids")
        inputs["decoder_input_ids"] = padded["decoder_input_ids"]
        inputs["decoder_attention_mask"] = padded["attention_mask"]
    else:
        inputs["use_cache"] = False
    return inputs


def _run(handle: ModelHandle, batch: list[_Encoded]) -> list[Trace]:
    """One padded forward pass over a batch; returns each example's trace, padding cut away."""
    return _forward(handle, batch)[0]


def _forward(handle: ModelHandle, batch: list[_Encoded]) -> tuple[list[Trace], Any]:
    """:func:`_run`, also returning the model's outputs (logits of an LM head, padded like the batch)."""
    import torch

    model = handle.model
    lengths = [len(e.input_ids) for e in batch]
    dec_lengths = [len(e.decoder_input_ids or []) for e in batch] if handle.info.is_encoder_decoder else []
    inputs = _model_inputs(handle, batch)
    with torch.inference_mode():
        try:
            outputs = model(**inputs, output_attentions=True, return_dict=True)
        except TypeError as err:
            if "output_attentions" not in str(err):
                raise
            raise _no_attention(handle) from None

    stacks = _attention_stacks(handle, outputs)
    width = inputs["input_ids"].shape[1]
    dec_width = inputs["decoder_input_ids"].shape[1] if "decoder_input_ids" in inputs else width
    expected = {"encoder": (width, width), "decoder": (dec_width, dec_width), "cross": (dec_width, width)}
    for name, layers in stacks.items():
        if any(layer.dim() != 4 or tuple(layer.shape[2:]) != expected[name] for layer in layers):
            raise _no_attention(handle, f"its {name} attention is not [batch, heads, query, key]")
    arrays = {name: _to_numpy(layers) for name, layers in stacks.items()}
    traces = []
    for b, enc in enumerate(batch):
        n = lengths[b]
        m = dec_lengths[b] if dec_lengths else n
        sizes = {"encoder": (n, n), "decoder": (m, m), "cross": (m, n)}
        attention = {
            name: np.ascontiguousarray(arr[:, b, :, : sizes[name][0], : sizes[name][1]]) for name, arr in arrays.items()
        }
        traces.append(
            Trace(
                model=handle.info,
                tokens=enc.tokens,
                target_tokens=enc.target_tokens,
                attention=attention,
                truncated=enc.truncated,
            )
        )
    return traces, outputs


def _to_numpy(layers: Sequence[Any]) -> np.ndarray:
    """Per-layer tensors [B, H, Q, K] -> one float32 array [L, B, H, Q, K], copying each layer once."""
    import torch

    out = np.empty((len(layers), *layers[0].shape), dtype=np.float32)
    for i, layer in enumerate(layers):
        out[i] = layer.detach().to("cpu", torch.float32).numpy()
    return out


def _attention_stacks(handle: ModelHandle, outputs: Any) -> dict[str, Sequence[Any]]:
    if handle.info.is_encoder_decoder:
        found = {
            "encoder": getattr(outputs, "encoder_attentions", None),
            "decoder": getattr(outputs, "decoder_attentions", None),
            "cross": getattr(outputs, "cross_attentions", None),
        }
    else:
        found = {"decoder" if handle.info.is_causal else "encoder": getattr(outputs, "attentions", None)}
    stacks = {k: v for k, v in found.items() if v}
    if not stacks or any(any(layer is None for layer in v) for v in stacks.values()):
        raise _no_attention(handle)
    return stacks


def _no_attention(handle: ModelHandle, detail: str = "it returned none") -> UnsupportedModelError:
    return UnsupportedModelError(
        f"{handle.name} ({type(handle.model).__name__}) gives no usable attention weights ({detail}); attnscope "
        "needs a Transformer whose forward pass supports output_attentions=True with eager attention"
    )


def _pad(seqs: list[list[int]], pad: int, device: Any, key: str = "input_ids") -> dict[str, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {key: ids.to(device), "attention_mask": mask.to(device)}


def _pad_id(handle: ModelHandle) -> int:
    for source in (handle.tokenizer, handle.model.config):
        value = getattr(source, "pad_token_id", None)
        if isinstance(value, int):
            return value
    eos = getattr(handle.tokenizer, "eos_token_id", None)
    return eos if isinstance(eos, int) else 0


def _progress_bar(total: int, progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="text", desc="tracing")
