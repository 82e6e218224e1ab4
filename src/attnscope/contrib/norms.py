"""Norm-based contributions (Kobayashi et al. 2020) and the residual- and LayerNorm-aware mixing (2021).

Both read the values captured with ``trace(..., values=True)``. With f_h(x_j) = v_hj · W_o,h (head h's
value vector of token j through its slice of the output projection), head h moves α_hij·f_h(x_j) from
token j into token i. Kobayashi et al. 2020 measure ‖α_hij f_h(x_j)‖ per head and ‖Σ_h α_hij f_h(x_j)‖
for the layer; 2021 add the residual (x_i, to token i itself) and the LayerNorm after the sum, which is
linear in each term once the sum's standard deviation is fixed.
"""

from __future__ import annotations

import numpy as np

from attnscope.contrib._common import keep, need_values, pick_stack
from attnscope.errors import UnsupportedModelError
from attnscope.traces import FloatArray, Trace


def norms(trace: Trace, stack: str | None = None) -> FloatArray:
    """‖α_hij · f_h(x_j)‖ for every layer, head, query i and key j: float32 [L, H, Q, K] (Kobayashi 2020)."""
    chosen = pick_stack(trace, stack, "norms")
    values = need_values(trace, chosen, "norms")
    attention = trace.attention[chosen]
    out = np.empty(attention.shape, dtype=np.float32)
    for layer in range(len(attention)):
        size = np.linalg.norm(values.transformed(layer), axis=-1)  # [H, K]: ‖f_h(x_j)‖
        out[layer] = attention[layer] * size[:, None, :]
    return keep(trace, "norms", chosen, out)


def norms_summed(trace: Trace, stack: str | None = None) -> FloatArray:
    """‖Σ_h α_hij · f_h(x_j)‖, what layer l moves from j into i through all its heads: float32 [L, Q, K]."""
    chosen = pick_stack(trace, stack, "norms_summed")
    values = need_values(trace, chosen, "norms_summed")
    attention = trace.attention[chosen]
    out = np.stack([_summed_norm(attention[layer], values.transformed(layer)) for layer in range(len(attention))])
    return keep(trace, "norms_summed", chosen, out)


def mixing(trace: Trace, stack: str | None = None) -> FloatArray:
    """Residual- and LayerNorm-aware contributions ‖LN-part(Σ_h α_hij f_h(x_j) + [i=j]·x_i)‖: [L, Q, K].

    Kobayashi et al. 2021 ("ATB + RES + LN"): the post-LN block outputs LN(Σ_j Σ_h α_hij f_h(x_j) + b_o + x_i);
    with the standard deviation s_i of that sum fixed, LN splits into per-token terms γ·(z_ij - mean(z_ij))/s_i
    (b_o and LN's β belong to no token). Defined for post-LN self-attention blocks (BERT family, DistilBERT,
    BART/Marian encoder and decoder); a clear error elsewhere.
    """
    chosen = pick_stack(trace, stack, "mixing", self_only=True)
    values = need_values(trace, chosen, "mixing")
    if values.residual is None or values.norm_weight is None or values.norm_eps is None:
        raise UnsupportedModelError(
            f"mixing needs a post-LN block (LayerNorm after residual + attention), which the {trace.model.model_type} "
            f"adapter does not declare for its {chosen} stack: it is defined for the BERT family, DistilBERT and "
            "BART/Marian self-attention; use norms_summed() for other models"
        )
    attention = trace.attention[chosen]
    gamma = values.norm_weight[:, None, :]  # [L, 1, D]
    x = values.residual  # [L, Q, D]
    z = values.rebuild(attention) + x  # what each LayerNorm normalises (b_o included)
    std = np.sqrt(z.var(axis=-1, dtype=np.float64) + values.norm_eps[:, None])  # [L, Q]
    # LN's linear part on each term, γ·(f - mean(f)), folded into W_o's columns first: the mean over D of
    # v·W_o is v·mean(W_o), so one matmul gives every centred, scaled f, with no pass over [L, H, K, D].
    w = values.out_weight
    f = np.matmul(values.vectors, (w - w.mean(axis=-1, keepdims=True)) * gamma[:, None])  # [L, H, K, D]
    xr = (x - x.mean(axis=-1, keepdims=True)) * gamma
    own = np.diagonal(attention, axis1=2, axis2=3)  # [L, H, Q]: α_hii
    dots = np.einsum("lhid,lid->lhi", f, xr)  # ⟨f_hi, x_i⟩ in float32, one pass; summed over heads in float64
    cross_term = np.einsum("lhi,lhi->li", own, dots, dtype=np.float64)
    x_sq = np.einsum("lid,lid->li", xr, xr, dtype=np.float64)
    out = np.empty(attention.shape[:1] + attention.shape[2:], dtype=np.float32)
    idx = np.arange(x.shape[1])
    for layer in range(len(attention)):
        squared = _summed_norm(attention[layer], f[layer], squared=True)  # [Q, K]
        squared[idx, idx] += (2 * cross_term[layer] + x_sq[layer]).astype(np.float32)  # residual: to the token itself
        np.maximum(squared, 0.0, out=squared)
        np.sqrt(squared, out=squared)
        np.divide(squared, std[layer][:, None].astype(np.float32), out=out[layer])
    return keep(trace, "mixing", chosen, out)


def mixing_ratio(trace: Trace, stack: str | None = None) -> FloatArray:
    """Kobayashi et al. 2021's context-mixing ratio per layer and token: Σ_{j≠i} N_ij / Σ_j N_ij, [L, Q].

    N is :func:`mixing`; 0 means the token kept only itself (residual and self-attention), 1 only context.
    """
    n = mixing(trace, stack)
    total = n.sum(axis=-1)
    own = np.diagonal(n, axis1=1, axis2=2)
    ratio = (total - own) / total
    return keep(trace, "mixing_ratio", stack or trace.main_stack, ratio)


def _summed_norm(attention: np.ndarray, f: np.ndarray, *, squared: bool = False) -> np.ndarray:
    """‖Σ_h α_hij f_hj‖ (float32) [Q, K] from α [H, Q, K] and f [H, K, D], through the per-key Gram matrix of the heads.

    ‖Σ_h α_h f_h‖² = Σ_h α_h (α_h ⟨f_h, f_h⟩ + 2 Σ_(g>h) α_g ⟨f_h, f_g⟩): H(H+1)/2 products of [Q, K]
    arrays in their own layout, instead of materialising [Q, K, D] or transposing α.
    """
    per_key = np.asarray(f, dtype=np.float32).transpose(1, 0, 2)  # [K, H, D]
    gram = np.ascontiguousarray((per_key @ per_key.transpose(0, 2, 1)).transpose(1, 2, 0))  # [H, H, K]
    twice = 2 * gram
    alpha = np.asarray(attention, dtype=np.float32)
    total = np.zeros(alpha.shape[1:], dtype=np.float32)
    acc, scratch = np.empty_like(total), np.empty_like(total)  # in place: no temporaries per product
    for h in range(len(alpha)):
        np.multiply(alpha[h], gram[h, h], out=acc)
        for g in range(h + 1, len(alpha)):
            np.multiply(alpha[g], twice[h, g], out=scratch)
            acc += scratch
        acc *= alpha[h]
        total += acc
    return total if squared else np.sqrt(np.maximum(total, 0.0))
