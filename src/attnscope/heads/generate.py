"""Generated inputs for pattern scores: random token sequences repeated, traced by token id.

Olsson et al. (2022) measure induction (and duplicate-token) heads on a random sequence of tokens
followed by the same sequence again: in the second copy every token has an earlier occurrence, and
nothing but in-context copying can predict it. Tokens are drawn uniformly (seeded) from the
tokenizer's vocabulary minus its special tokens; the tokenizer's own special tokens are added
around the sequence ([CLS] ... [SEP], or BOS in front where the tokenizer names one and adds none).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from attnscope.errors import InputError
from attnscope.loading import ModelHandle
from attnscope.tokens import Tokens, display_form
from attnscope.traces import Trace
from attnscope.tracing import _decoder_start_id, _Encoded, _run


def repeated_ids(handle: ModelHandle, n_sequences: int, span: int, repeats: int, seed: int) -> list[list[int]]:
    """``n_sequences`` id lists: special tokens around ``repeats`` copies of ``span`` random ids."""
    if n_sequences < 1 or span < 1 or repeats < 1:
        raise InputError("generated inputs need n_sequences, span and repeats of at least 1")
    tok = handle.tokenizer
    special = set(tok.all_special_ids)
    pool = np.array([i for i in range(len(tok)) if i not in special], dtype=np.int64)
    rng = np.random.default_rng(seed)
    bos = getattr(tok, "bos_token_id", None)
    prefix, suffix = _frame(tok)
    if isinstance(bos, int) and bos not in prefix:
        prefix = [bos, *prefix]
    out = []
    for _ in range(n_sequences):
        body = rng.choice(pool, size=span).tolist() * repeats
        out.append([int(i) for i in (*prefix, *body, *suffix)])
    limit = handle.max_length
    if limit is not None and len(out[0]) > limit:
        raise InputError(
            f"a generated input is {len(out[0])} tokens but {handle.name} accepts at most {limit}; use a shorter span"
        )
    return out


def _frame(tok: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (read from encoding one word)."""
    enc = tok("a", return_special_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), list(enc["special_tokens_mask"])
    body = [i for i, m in enumerate(mask) if not m]
    if not body:
        return [], []
    return ids[: body[0]], ids[body[-1] + 1 :]


def _tokens(handle: ModelHandle, ids: list[int]) -> Tokens:
    tok = handle.tokenizer
    raw = tuple(tok.convert_ids_to_tokens(ids))
    special = np.isin(np.asarray(ids), np.asarray(tok.all_special_ids, dtype=np.int64))
    n = len(ids)
    return Tokens(
        raw=raw,
        display=tuple(r if special[i] else display_form(r) for i, r in enumerate(raw)),
        special=special,
        segment=np.zeros(n, dtype=np.int8),
        word_ids=np.full(n, -1, dtype=np.int32),
        offsets=np.full((n, 2), -1, dtype=np.int32),
        texts=(),
    )


def trace_ids(handle: ModelHandle, sequences: list[list[int]], batch_size: int = 16) -> Iterator[Trace]:
    """Trace id sequences in batches (encoder-decoders get the same ids as decoder input, after the start id)."""
    for b in range(0, len(sequences), batch_size):
        batch = []
        for ids in sequences[b : b + batch_size]:
            enc = _Encoded(input_ids=ids, token_type_ids=None, tokens=_tokens(handle, ids))
            if handle.info.is_encoder_decoder:
                dec = [_decoder_start_id(handle), *ids]
                enc.decoder_input_ids = dec
                enc.target_tokens = _tokens(handle, dec)
            batch.append(enc)
        yield from _run(handle, batch)
