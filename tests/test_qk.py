"""Query/key capture: for every adapter, softmax(q·kᵀ·scale + bias + mask) rebuilt from the captured vectors
equals the attention the model itself returned, and the hooks never outlive the capture."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
import tiny_models
from attnscope.adapters import ADAPTERS, supported_families
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.qk import capture_qk
from attnscope.traces import QK, Trace

TEXT = "The cat is very sad because it could not find any food to eat today."
PAIR = ("The cat is very sad.", "Because it could not find food to eat.")
TARGET = "Le chat est triste."
ATOL = 1e-5
FAMILIES = tuple(tiny_models.CONFIGS)
# Larger initial weights make attention far from uniform, so that a wrong q, k, scale or mask shows.
SHARP: dict[str, dict[str, Any]] = {
    "xlm": {"init_std": 0.15},
    "bart": {"init_std": 0.15},
    "marian": {"init_std": 0.15},
    "t5": {},  # T5's own initialisation is already far from uniform
}


def _trace(handle: Any, family: str, **kw: Any) -> Trace:
    target = TARGET if family in tiny_models.ENCODER_DECODERS else None
    return attnscope.trace(handle, TEXT, target=target, qk=True, **kw)


def _assert_rebuilds(t: Trace) -> None:
    assert set(t.qk) == set(t.attention)
    for stack, qk in t.qk.items():
        layers, heads, q_len, k_len = t.attention[stack].shape
        d = qk.queries.shape[-1]
        assert qk.queries.shape == (layers, heads, q_len, d)
        assert qk.keys.shape == (layers, heads, k_len, d)
        assert qk.scale.shape == (layers,)
        assert qk.mask.shape == (layers, q_len, k_len)
        assert qk.bias is None or qk.bias.shape == (layers, heads, q_len, k_len)
        for arr in qk.arrays().values():
            assert arr.dtype == np.float32
        np.testing.assert_allclose(qk.rebuild(), t.attention[stack], atol=ATOL, rtol=0, err_msg=stack)


@pytest.fixture(scope="module")
def sharp(wordpiece: Any) -> Callable[[str], Any]:
    """Factory: a tiny model of a family whose attention is far from uniform (cached)."""
    from attnscope.loading import ModelHandle

    cache: dict[str, Any] = {}

    def make(family: str) -> Any:
        if family not in cache:
            overrides = SHARP.get(family, {"initializer_range": 0.15})
            model = tiny_models.build(family, **overrides)
            cache[family] = ModelHandle.from_model(model, wordpiece, f"sharp-{family}")
        return cache[family]

    return make


@pytest.mark.parametrize("family", FAMILIES)
def test_rebuild_equals_model_attention(tiny: Any, family: str) -> None:
    _assert_rebuilds(_trace(tiny(family), family))


@pytest.mark.parametrize("family", FAMILIES)
def test_rebuild_on_peaked_attention(sharp: Any, family: str) -> None:
    t = _trace(sharp(family), family)
    _assert_rebuilds(t)
    for stack, qk in t.qk.items():  # the check has power: without the queries the rebuild is far off
        flat = dataclasses.replace(qk, queries=np.zeros_like(qk.queries))
        assert np.abs(flat.rebuild() - t.attention[stack]).max() > 0.1, stack


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_are_the_pre_softmax_terms(sharp: Any, family: str) -> None:
    t = _trace(sharp(family), family)
    for stack, qk in t.qk.items():
        for layer, head in ((0, 0), (1, 3)):
            s = qk.scores(layer, head)
            expected = qk.queries[layer, head] @ qk.keys[layer, head].T * qk.scale[layer] + qk.mask[layer]
            if qk.bias is not None:
                expected = expected + qk.bias[layer, head]
            np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-6)
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            np.testing.assert_allclose(e / e.sum(-1, keepdims=True), t.head(layer, head, stack), atol=ATOL)


def test_minilm_pair(minilm: Any) -> None:
    t = attnscope.trace(minilm, *PAIR, qk=True)
    _assert_rebuilds(t)
    qk = t.qk["encoder"]
    n = len(t.tokens)
    assert qk.queries.shape == (6, 12, n, 32)
    np.testing.assert_allclose(qk.scale, 32**-0.5)
    assert not qk.mask.any()  # one unpadded example: nothing masked
    assert qk.bias is None


@pytest.mark.parametrize("family", ["bert", "xlm", "distilbert"])
def test_sentence_pair_tiny_encoders(sharp: Any, family: str) -> None:
    t = attnscope.trace(sharp(family), *PAIR, qk=True)
    assert t.tokens.sentence_b_start is not None
    _assert_rebuilds(t)


def test_mistral_sliding_window_is_in_the_mask(sharp: Any) -> None:
    handle = sharp("mistral")
    window = handle.model.config.sliding_window
    t = _trace(handle, "mistral")
    n = len(t.tokens)
    assert n > window + 2, "the text must be longer than the window for the test to mean anything"
    qk = t.qk["decoder"]
    query, key = np.indices((n, n))
    allowed = (key <= query) & (query - key < window)
    for layer in range(qk.mask.shape[0]):
        assert (qk.mask[layer][allowed] == 0).all()
        assert (qk.mask[layer][~allowed] < -1e30).all()
    assert (t.attention["decoder"][:, :, ~allowed] == 0).all()
    _assert_rebuilds(t)


@pytest.mark.parametrize(("family", "kv_heads"), [("llama", 2), ("mistral", 2), ("qwen2", 1)])
def test_grouped_query_heads_share_keys(sharp: Any, family: str, kv_heads: int) -> None:
    handle = sharp(family)
    assert handle.model.config.num_key_value_heads == kv_heads
    keys = _trace(handle, family).qk["decoder"].keys
    group = keys.shape[1] // kv_heads
    for head in range(keys.shape[1]):
        np.testing.assert_array_equal(keys[:, head], keys[:, (head // group) * group])
    if kv_heads > 1:
        assert not np.allclose(keys[:, 0], keys[:, group])


def test_llama_queries_are_after_rotary(sharp: Any) -> None:
    """At position 0 rotary is the identity; later positions differ from the raw projection."""
    handle = sharp("llama")
    raw: list[Any] = []
    hook = handle.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, a, out: raw.append(out))
    try:
        t = _trace(handle, "llama")
    finally:
        hook.remove()
    d = t.qk["decoder"].queries.shape[-1]
    projected = raw[0][0].unflatten(-1, (-1, d)).transpose(0, 1).float().numpy()  # [H, T, d]
    captured = t.qk["decoder"].queries[0]
    np.testing.assert_allclose(captured[:, 0], projected[:, 0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(captured[:, 1:], projected[:, 1:], atol=1e-3)


def test_t5_position_bias_is_needed(sharp: Any) -> None:
    t = _trace(sharp("t5"), "t5")
    for stack in ("encoder", "decoder"):
        qk = t.qk[stack]
        assert qk.bias is not None
        np.testing.assert_array_equal(qk.scale, 1.0)  # T5 does not scale its scores
        unbiased = dataclasses.replace(qk, bias=None)
        assert np.abs(unbiased.rebuild() - t.attention[stack]).max() > 1e-2
    assert t.qk["cross"].bias is None  # T5's cross attention has no position bias


def test_gpt2_layer_dependent_scale(wordpiece: Any) -> None:
    from attnscope.loading import ModelHandle

    model = tiny_models.build("gpt2", initializer_range=0.15, scale_attn_by_inverse_layer_idx=True)
    t = _trace(ModelHandle.from_model(model, wordpiece), "gpt2")
    np.testing.assert_allclose(t.qk["decoder"].scale, [8**-0.5, 8**-0.5 / 2], rtol=1e-6)
    _assert_rebuilds(t)


@pytest.mark.parametrize(
    ("family", "auto_class"),
    [("gpt2", "AutoModelForCausalLM"), ("t5", "AutoModelForSeq2SeqLM"), ("distilbert", "AutoModelForMaskedLM")],
)
def test_models_with_heads(wordpiece: Any, family: str, auto_class: str) -> None:
    """Adapter paths start at the base model, so task heads around it change nothing."""
    import transformers

    from attnscope.loading import ModelHandle

    cls_name, kwargs = tiny_models.CONFIGS[family]
    config = getattr(transformers, cls_name)(vocab_size=tiny_models.VOCAB, **kwargs)
    model = getattr(transformers, auto_class).from_config(config, attn_implementation="eager").eval()
    _assert_rebuilds(_trace(ModelHandle.from_model(model, wordpiece), family))


def _all_hooks(model: Any) -> set[tuple[str, str, int]]:
    """Every forward (pre-)hook on the model. Transformers installs its own output-capturing hooks on
    the first forward pass and keeps them, so capture must leave exactly the hooks it found."""
    return {
        (name, kind, key)
        for name, m in model.named_modules()
        for kind in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_pre_hooks_with_kwargs",
        )
        for key in getattr(m, kind)
    }


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_hooks_removed_after_capture(tiny: Any, family: str) -> None:
    handle = tiny(family)
    before = _all_hooks(handle.model)
    with capture_qk(handle):
        assert _all_hooks(handle.model) > before
        assert len(_all_hooks(handle.model) - before) >= 3 * 2  # pre-hook, query and key per layer
    assert _all_hooks(handle.model) == before
    _trace(handle, family)
    assert _all_hooks(handle.model) == before


def test_hooks_removed_when_forward_raises(tiny: Any) -> None:
    import torch

    handle = tiny("llama")
    before = _all_hooks(handle.model)
    during: list[int] = []

    def failing_forward() -> None:
        with capture_qk(handle):
            during.append(len(_all_hooks(handle.model)))
            handle.model(input_ids=torch.tensor([[10**6]]))  # an id past the vocabulary

    with pytest.raises((IndexError, RuntimeError)):
        failing_forward()
    assert during[0] > len(before)
    assert _all_hooks(handle.model) == before


@pytest.mark.parametrize(("config_name", "kwargs"), [
    ("GPTNeoConfig", {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "attention_types": [[["global"], 2]]}),
    ("OPTConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 64,
                   "word_embed_proj_dim": 32}),
])  # fmt: skip
def test_unsupported_family(wordpiece: Any, config_name: str, kwargs: dict[str, Any]) -> None:
    import transformers

    from attnscope.loading import ModelHandle

    config = getattr(transformers, config_name)(vocab_size=tiny_models.VOCAB, **kwargs)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    handle = ModelHandle.from_model(model, wordpiece, config_name)
    with pytest.raises(UnsupportedModelError, match="supported families") as err, capture_qk(handle):
        pytest.fail("capture_qk must refuse on entry")
    assert "LLaMA family (llama, mistral, qwen2)" in str(err.value)
    assert not _all_hooks(model)
    with pytest.raises(UnsupportedModelError, match=config.model_type):
        attnscope.trace(handle, TEXT, qk=True)
    assert attnscope.trace(handle, TEXT).attention  # attention alone still works


def test_adapter_table_covers_the_families() -> None:
    assert set(ADAPTERS) == set(FAMILIES)
    for family in ("BERT family", "XLM", "GPT-2", "LLaMA family", "T5", "BART/Marian"):
        assert family in supported_families()


def test_one_example_one_pass(tiny: Any) -> None:
    import torch

    handle = tiny("bert")
    ids = torch.tensor([[101, 2000, 102], [101, 2001, 102]])
    with capture_qk(handle) as rec, torch.inference_mode():
        handle.model(input_ids=ids, output_attentions=True)
    with pytest.raises(InputError, match="one example"):
        rec.collect()
    with capture_qk(handle) as rec, torch.inference_mode():
        handle.model(input_ids=ids[:1])
        handle.model(input_ids=ids[:1])
    with pytest.raises(UnsupportedModelError, match="one forward pass"):
        rec.collect()
    with capture_qk(handle) as rec:
        pass
    with pytest.raises(UnsupportedModelError, match="ran"):
        rec.collect()


@pytest.mark.parametrize("family", ["t5", "mistral"])
def test_qk_survive_save_and_load(sharp: Any, family: str, tmp_path: Path) -> None:
    t = _trace(sharp(family), family)
    back = Trace.load(t.save(tmp_path / "t.safetensors"))
    assert set(back.qk) == set(t.qk)
    for stack, qk in t.qk.items():
        loaded: QK = back.qk[stack]
        assert loaded.arrays().keys() == qk.arrays().keys()
        for name, arr in qk.arrays().items():
            np.testing.assert_array_equal(loaded.arrays()[name], arr)
        np.testing.assert_allclose(loaded.rebuild(), back.attention[stack], atol=ATOL)


def test_cli_trace_qk(minilm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from attnscope.cli import main

    out = tmp_path / "pair.safetensors"
    assert main(["trace", *PAIR, "--qk", "-o", str(out)]) == 0
    assert "+ q/k" in capsys.readouterr().out
    t = Trace.load(out)
    _assert_rebuilds(t)
