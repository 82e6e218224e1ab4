"""Which query rows a head statistic averages over, and what kind of token each key is.

Rows: every query token that is not a special token ([CLS], [SEP], <s>, BOS...). In a causal stack
(decoders) position 0 is also left out, whatever it is: it can attend only to itself (it is the
attention sink), so its row says nothing about the head. Keys fall into four disjoint kinds, as in
Clark et al. (2019), Fig. 2: ``first`` (position 0: [CLS], BOS, or the first token when the tokenizer
adds none), ``sep`` (every other special token: [SEP], EOS, </s>...), ``punct`` (a non-special token
made only of Unicode punctuation) and ``other``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import ModelInfo, Trace

SELF_STACKS = ("encoder", "decoder")


def is_punctuation(text: str) -> bool:
    """True if ``text`` is non-empty and every character is Unicode punctuation (category P*)."""
    stripped = text.strip()
    return bool(stripped) and all(unicodedata.category(ch).startswith("P") for ch in stripped)


@dataclass(frozen=True)
class KeyKinds:
    """Per-token masks of one self-attention sequence: rows to average and the four key kinds."""

    rows: NDArray[np.bool_]
    first: NDArray[np.bool_]
    sep: NDArray[np.bool_]
    punct: NDArray[np.bool_]
    segment: NDArray[np.int8]

    @property
    def other(self) -> NDArray[np.bool_]:
        return ~(self.first | self.sep | self.punct)


def key_kinds(trace: Trace, stack: str) -> KeyKinds:
    """Row and key-kind masks for one stack of ``trace`` (see the module docstring)."""
    tokens, _ = trace.sides(stack)
    n = len(tokens)
    special = np.asarray(tokens.special, dtype=bool)
    first = np.zeros(n, dtype=bool)
    first[:1] = True
    sep = special & ~first
    punct = ~special & ~first & np.array([is_punctuation(t) for t in tokens.display], dtype=bool)
    rows = ~special
    if stack == "decoder":
        rows[:1] = False
    return KeyKinds(rows=rows, first=first, sep=sep, punct=punct, segment=np.asarray(tokens.segment, dtype=np.int8))


def model_stacks(info: ModelInfo) -> tuple[str, ...]:
    """The attention stacks a model has: encoder, decoder, and cross for encoder-decoders."""
    if info.is_encoder_decoder:
        return ("encoder", "decoder", "cross")
    return ("decoder",) if info.is_causal else ("encoder",)


def resolve_stack(info: ModelInfo, stack: str | None) -> str:
    """The self-attention stack to analyse: ``stack`` if the model has it, else its first stack."""
    have = model_stacks(info)
    if stack is None:
        return have[0]
    if stack not in have:
        raise InputError(f"{info.name} has no {stack} attention (its stacks: {', '.join(have)}); pick one of those")
    if stack not in SELF_STACKS:
        raise InputError(f"stack {stack!r} is cross-attention; head statistics need self-attention: {SELF_STACKS}")
    return stack
