"""The trained tiny GPT-2 on EWT text: rankings equal a direct, independent computation from its attention.

Its card: weak previous-token heads in layer 0, no induction head. The direct computation below runs
the Hugging Face model itself (not attnscope's tracing) and scores with plain loops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.heads import find_heads

MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "tiny-gpt2-ewt"


@pytest.fixture(scope="module")
def ewt(shared_data: Path) -> tuple[Any, Any, list[str]]:
    if not MODEL.is_dir():
        pytest.skip(f"the trained tiny GPT-2 is not at {MODEL} (it lies beside the checkout in dev and CI)")
    import attnscope
    from attnscope.probe.data import read_treebank

    texts = [s.text for s in read_treebank(shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu", limit=60)]
    return attnscope.load(str(MODEL), device="cpu"), _hf(), texts


def _hf() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, attn_implementation="eager").eval()
    return tok, model


def _attention(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return np.stack([layer[0].numpy() for layer in out.attentions]).astype(np.float64)  # [L, H, T, T]


def _order(scores: np.ndarray) -> list[tuple[int, int]]:
    heads = [(layer, head) for layer in range(scores.shape[0]) for head in range(scores.shape[1])]
    return sorted(heads, key=lambda lh: (-scores[lh], lh))


def _ranked(result: Any) -> list[tuple[int, int]]:
    return [(r["layer"], r["head"]) for r in result.ranking()]


def test_previous_ranking_equals_direct_computation(ewt: tuple[Any, Any, list[str]]) -> None:
    handle, (tok, model), texts = ewt
    result = find_heads(handle, texts, pattern="previous")
    direct = np.zeros((2, 4))
    for text in texts:
        ids = tok(text)["input_ids"]
        att = _attention(model, ids)
        t = len(ids)
        for layer in range(2):
            for head in range(4):  # TransformerLens "mul": attention on key i-1, over the attention's total
                hit = sum(att[layer, head, i, i - 1] for i in range(1, t))
                direct[layer, head] += hit / att[layer, head].sum()
    direct /= len(texts)
    assert _ranked(result) == _order(direct)
    np.testing.assert_allclose(result.scores, direct, atol=1e-5)
    assert {_ranked(result)[0][0], _ranked(result)[1][0]} == {0}  # the card: previous-token heads in layer 0


def test_induction_ranking_equals_direct_computation(ewt: tuple[Any, Any, list[str]]) -> None:
    from attnscope.heads.generate import repeated_ids

    handle, (tok, model), _ = ewt
    result = find_heads(handle, pattern="induction", generated=True, n_sequences=12, span=30, seed=5)
    sequences = repeated_ids(handle, 12, 30, 2, 5)
    assert all(s[0] == tok.convert_tokens_to_ids("<|endoftext|>") and s[1:31] == s[31:] for s in sequences)
    direct = np.zeros((2, 4))
    for ids in sequences:
        att = _attention(model, ids)
        hit, total = np.zeros((2, 4)), np.zeros((2, 4))
        for i in range(len(ids)):  # Olsson et al.: from a repeated token to the token after its earlier occurrence
            targets = [j + 1 for j in range(1, i) if ids[j] == ids[i]]
            if targets:
                hit += att[:, :, i, targets].sum(-1)
                total += att[:, :, i].sum(-1)
        direct += hit / total
    direct /= len(sequences)
    assert _ranked(result) == _order(direct)
    np.testing.assert_allclose(result.scores, direct, atol=1e-5)
    assert result.scores.max() < 0.1  # the card: no induction head yet
