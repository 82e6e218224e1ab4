"""Where each architecture family keeps its queries and keys: one small declarative adapter per family.

An adapter is data, read by :mod:`attnscope.qk` to hook the real modules: the layer list and attention
module of each attention stack, the names of the query, key and value projections (or of the fused
projection to split), the output projection and, for post-LN blocks, the LayerNorm after the residual sum,
the attribute that holds the score scale, how the mask reaches the module and what it means, the function
that applies rotary position embedding, and where an additive position bias comes from.
The table :data:`ADAPTERS` picks one by ``config.model_type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from attnscope.errors import UnsupportedModelError

SELF = "self"
"""Stack key of single-stack models; it becomes "decoder" for causal models and "encoder" otherwise."""


@dataclass(frozen=True)
class StackPath:
    """Where one attention stack lives, relative to the model's base model."""

    layers: str
    """Dotted path of the ModuleList of layers."""
    attention: str
    """Dotted path of the attention module inside one layer ("" when the list holds attention modules)."""
    output: str = ""
    """Dotted path, inside one layer, of the output projection that mixes the heads (W_o, b_o)."""
    post_norm: str | None = None
    """Dotted path, inside one layer, of the LayerNorm applied to ``block input + attention output`` (post-LN
    blocks such as BERT's); None where the block is pre-LN or its layout is not declared."""


@dataclass(frozen=True)
class Adapter:
    """How one architecture family computes ``softmax(q·kᵀ·scale + bias + mask)``, as data."""

    family: str
    model_types: tuple[str, ...]
    stacks: Mapping[str, StackPath]
    query: str = "q_proj"
    """Child of the attention module whose output is the queries [B, T, H·d] (before any rotary)."""
    key: str = "k_proj"
    """Child whose output is the keys [B, S, H_kv·d]; unused when ``fused``."""
    value: str = "v_proj"
    """Child whose output is the values [B, S, H_kv·d]; unused when ``fused``."""
    fused: bool = False
    """``query`` outputs queries, keys and values as three equal parts of the last axis (GPT-2's c_attn)."""
    output_conv1d: bool = False
    """The output projection stores its weight as [in, out] (GPT-2's Conv1D) rather than nn.Linear's [out, in]."""
    head_dim: str = "head_dim"
    """Attribute of the attention module holding the size of one head."""
    scale: str | None = "scaling"
    """Attribute holding the factor scores are multiplied by; None: the module divides by √d itself."""
    mask_arg: str = "attention_mask"
    """Argument of the attention module's forward that carries the mask."""
    mask_keeps: bool = False
    """The mask holds 1 where a query may attend and 0 where not (XLM), rather than an additive term."""
    rotary: str | None = None
    """Function, in the attention module's own Python module, that rotates (q, k) by (cos, sin)."""
    rotary_arg: str = "position_embeddings"
    """Argument of the attention module's forward that carries (cos, sin)."""
    bias_output: int | None = None
    """Index, in the attention module's output tuple, of the additive position bias it used (T5)."""


_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra")

BERT = Adapter(
    family="BERT family",
    model_types=_BERT_LIKE,
    stacks={
        SELF: StackPath(
            "encoder.layer", "attention.self", output="attention.output.dense", post_norm="attention.output.LayerNorm"
        )
    },
    query="query",
    key="key",
    value="value",
    head_dim="attention_head_size",
)
DISTILBERT = Adapter(
    family="BERT family",
    model_types=("distilbert",),
    stacks={SELF: StackPath("transformer.layer", "attention", output="attention.out_lin", post_norm="sa_layer_norm")},
    query="q_lin",
    key="k_lin",
    value="v_lin",
    head_dim="attention_head_size",
)
XLM = Adapter(
    family="XLM",
    model_types=("xlm",),
    stacks={SELF: StackPath("attentions", "", output="out_lin")},
    query="q_lin",
    key="k_lin",
    value="v_lin",
    scale=None,  # XLM divides q by √d before the product and has no scaling attribute
    mask_arg="mask",
    mask_keeps=True,  # [B, K] or [B, Q, K] of 1/0; the module fills the 0s with the dtype's minimum
)
GPT2 = Adapter(
    family="GPT-2",
    model_types=("gpt2",),
    stacks={SELF: StackPath("h", "attn", output="attn.c_proj")},
    query="c_attn",
    fused=True,
    output_conv1d=True,
)
LLAMA = Adapter(
    family="LLaMA family",
    model_types=("llama", "mistral", "qwen2"),
    stacks={SELF: StackPath("layers", "self_attn", output="self_attn.o_proj")},
    rotary="apply_rotary_pos_emb",  # queries and keys are captured after rotary, as the scores use them
)
T5 = Adapter(
    family="T5",
    model_types=("t5",),
    stacks={
        "encoder": StackPath("encoder.block", "layer.0.SelfAttention", output="layer.0.SelfAttention.o"),
        "decoder": StackPath("decoder.block", "layer.0.SelfAttention", output="layer.0.SelfAttention.o"),
        "cross": StackPath("decoder.block", "layer.1.EncDecAttention", output="layer.1.EncDecAttention.o"),
    },
    query="q",
    key="k",
    value="v",
    head_dim="key_value_proj_dim",
    mask_arg="mask",
    bias_output=1,  # T5Attention returns (output, position_bias, weights); scaling is 1.0
)
BART = Adapter(
    family="BART/Marian",
    model_types=("bart", "marian"),
    stacks={
        "encoder": StackPath(
            "encoder.layers", "self_attn", output="self_attn.out_proj", post_norm="self_attn_layer_norm"
        ),
        "decoder": StackPath(
            "decoder.layers", "self_attn", output="self_attn.out_proj", post_norm="self_attn_layer_norm"
        ),
        "cross": StackPath("decoder.layers", "encoder_attn", output="encoder_attn.out_proj"),
    },
)

FAMILIES: tuple[Adapter, ...] = (BERT, DISTILBERT, XLM, GPT2, LLAMA, T5, BART)
ADAPTERS: dict[str, Adapter] = {t: a for a in FAMILIES for t in a.model_types}


def supported_families() -> str:
    """The families with a query/key adapter and their model types, as one readable line."""
    by_family: dict[str, list[str]] = {}
    for adapter in FAMILIES:
        by_family.setdefault(adapter.family, []).extend(adapter.model_types)
    return "; ".join(f"{family} ({', '.join(types)})" for family, types in by_family.items())


def adapter_for(model_type: str) -> Adapter:
    """The adapter for a ``config.model_type``; UnsupportedModelError naming the supported families if none."""
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise UnsupportedModelError(
            f"attnscope cannot capture queries and keys of model type {model_type!r} yet (its attention still "
            f"traces without qk); supported families: {supported_families()}"
        )
    return adapter
