"""A 2-layer GPT-2 whose attention heads are planted by hand: previous-token, first-token, induction, it->cat.

Residual stream (width 384, every block stored as [c, -c] so its mean is 0 and LayerNorm only rescales
by a known constant): position code u_p (31 frequencies k*2pi/63: u_a.u_b = 1 if a = b, else -1/62),
token code t_v (random unit vectors, 64 dims) and, written by layer 0, the previous token's code.

- <0,1> previous token: q = S u_i (S shifts the code one position back), k = u_j; it copies t_j into
  the "previous token" block (V/O);
- <1,0> first token: q = a constant (the query bias) equal to u_0, k = u_j;
- <1,2> induction: q = t_i, k = the previous-token block of key j, so the query attends to the token right
  after an earlier occurrence of itself (Olsson et al. 2022's two-layer circuit);
- <1,1> "it" -> "cat": q = t_cat (t_it . t_i), k = t_j;
- every other head has zero weights (uniform attention, writes nothing); MLPs are zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tiny_models import CLS, SEP, VOCAB

D, HEADS, POSITIONS, TOKEN_DIMS, FREQS = 384, 4, 63, 64, 31
HEAD_DIM = D // HEADS
POS = 0
TOK = POS + 4 * FREQS  # 124
PREV = TOK + 2 * TOKEN_DIMS  # 252
PLANTED = {"previous": (0, 1), "first": (1, 0), "it_cat": (1, 1), "induction": (1, 2)}


def _position_codes() -> np.ndarray:
    p = np.arange(POSITIONS)[:, None]
    w = 2 * math.pi * np.arange(1, FREQS + 1)[None, :] / POSITIONS
    return np.concatenate([np.cos(w * p), np.sin(w * p)], axis=1) / math.sqrt(FREQS)  # [P, 62]


def _shift_back() -> np.ndarray:
    """S with S @ u_p = u_{p-1}."""
    w = 2 * math.pi * np.arange(1, FREQS + 1) / POSITIONS
    c, s = np.diag(np.cos(w)), np.diag(np.sin(w))
    return np.block([[c, s], [-s, c]])


def _ln_factor(norm2: float, eps: float = 1e-5) -> float:
    return 1.0 / math.sqrt(norm2 / D + eps)


def build_planted(tokenizer: Any, seed: int = 0) -> Any:
    """The planted GPT-2 (GPT2Model, eager attention, eval mode); ``tokenizer`` names "it" and "cat"."""
    import torch
    import transformers

    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=D, n_layer=2, n_head=HEADS, n_positions=POSITIONS, n_inner=4,
        bos_token_id=CLS, eos_token_id=SEP, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    config._attn_implementation = "eager"
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((VOCAB, TOKEN_DIMS))
    it, cat = (tokenizer.convert_tokens_to_ids(w) for w in ("it", "cat"))
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    others = np.arange(VOCAB) != it  # only "it" itself drives the it->cat query
    codes[others] -= np.outer(codes[others] @ codes[it], codes[it])
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    u = _position_codes()
    wte = np.zeros((VOCAB, D))
    wte[:, TOK : TOK + TOKEN_DIMS], wte[:, TOK + TOKEN_DIMS : PREV] = codes, -codes
    wpe = np.zeros((POSITIONS, D))
    wpe[:, POS : POS + 2 * FREQS], wpe[:, POS + 2 * FREQS : TOK] = u, -u
    f0, f1 = _ln_factor(4.0), _ln_factor(6.0)  # layer 0 sees pos + token; layer 1 also the previous token
    root = math.sqrt(HEAD_DIM)

    attn = [np.zeros((D, 3 * D)) for _ in range(2)]
    bias = [np.zeros(3 * D) for _ in range(2)]
    proj = [np.zeros((D, D)) for _ in range(2)]

    def head(h: int, part: int) -> slice:  # part 0 = q, 1 = k, 2 = v
        return slice(part * D + h * HEAD_DIM, part * D + h * HEAD_DIM + 2 * FREQS)

    def head_n(h: int, part: int, n: int) -> slice:
        return slice(part * D + h * HEAD_DIM, part * D + h * HEAD_DIM + n)

    pos = slice(POS, POS + 2 * FREQS)
    tok = slice(TOK, TOK + TOKEN_DIMS)
    prev = slice(PREV, PREV + TOKEN_DIMS)
    # <0,1> previous token: logit 40 on key i-1
    ab = 40 * root / f0**2
    attn[0][pos, head(1, 0)] = math.sqrt(ab) * _shift_back().T
    attn[0][pos, head(1, 1)] = math.sqrt(ab) * np.eye(2 * FREQS)
    attn[0][tok, head_n(1, 2, TOKEN_DIMS)] = np.eye(TOKEN_DIMS) / f0
    value = slice(HEAD_DIM, HEAD_DIM + TOKEN_DIMS)
    proj[0][value, prev] = np.eye(TOKEN_DIMS)
    proj[0][value, slice(PREV + TOKEN_DIMS, PREV + 2 * TOKEN_DIMS)] = -np.eye(TOKEN_DIMS)
    # <1,0> first token: logit 40 on key 0
    cb = 40 * root / f1
    bias[1][head(0, 0)] = math.sqrt(cb) * u[0]
    attn[1][pos, head(0, 1)] = math.sqrt(cb) * np.eye(2 * FREQS)
    # <1,1> "it" -> "cat": logit 30
    ab = 30 * root / f1**2
    attn[1][tok, head_n(1, 0, TOKEN_DIMS)] = math.sqrt(ab) * np.outer(codes[it], codes[cat])
    attn[1][tok, head_n(1, 1, TOKEN_DIMS)] = math.sqrt(ab) * np.eye(TOKEN_DIMS)
    # <1,2> induction: logit 60 on the key whose previous token is the query's token
    ab = 60 * root / f1**2
    attn[1][tok, head_n(2, 0, TOKEN_DIMS)] = math.sqrt(ab) * np.eye(TOKEN_DIMS)
    attn[1][prev, head_n(2, 1, TOKEN_DIMS)] = math.sqrt(ab) * np.eye(TOKEN_DIMS)

    def put(param: Any, array: np.ndarray) -> None:
        param.data.copy_(torch.as_tensor(array, dtype=param.dtype))

    with torch.no_grad():
        put(model.wte.weight, wte)
        put(model.wpe.weight, wpe)
        for i, block in enumerate(model.h):
            put(block.attn.c_attn.weight, attn[i])
            put(block.attn.c_attn.bias, bias[i])
            put(block.attn.c_proj.weight, proj[i])
            put(block.attn.c_proj.bias, np.zeros(D))
            for layer in (block.mlp.c_fc, block.mlp.c_proj):
                layer.weight.zero_()
                layer.bias.zero_()
            for norm in (block.ln_1, block.ln_2):
                norm.weight.fill_(1.0)
                norm.bias.zero_()
    return model
