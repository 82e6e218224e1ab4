"""Contribution measures: hand-computed cases, the networkx reference for flow, the module weights for the
norm-based measures, brute-force loops for value zeroing and gradient × input, storage, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
import flow_reference
import tiny_models
from attnscope import contrib
from attnscope.contrib.graph import max_flow_all_pairs
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.traces import Trace

TEXT = "The cat is very sad because it could not find any food."
TARGET = "Le chat est triste."


def _from_attention(att: np.ndarray) -> Trace:
    """A trace over made-up tokens from one [L, H, n, n] array."""
    n = att.shape[-1]
    return Trace.from_attentions([layer[None] for layer in att], [f"t{i}" for i in range(n)])


def _random_attention(layers: int, heads: int, n: int, seed: int, *, causal: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(layers, heads, n, n))
    if causal:
        scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def biased(wordpiece: Any) -> Any:
    """Factory: a tiny model with far-from-uniform attention and random biases everywhere (cached)."""
    import torch

    from attnscope.loading import ModelHandle

    cache: dict[str, Any] = {}

    def make(family: str) -> Any:
        if family not in cache:
            overrides = (
                {}
                if family == "t5"
                else {"init_std" if family in ("xlm", "bart", "marian") else "initializer_range": 0.15}
            )
            model = tiny_models.build(family, **overrides)
            gen = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name.endswith("bias") and p.dim() == 1:
                        p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            cache[family] = ModelHandle.from_model(model, wordpiece, f"biased-{family}")
        return cache[family]

    return make


def _trace(handle: Any, family: str, **kw: Any) -> Trace:
    target = TARGET if family in tiny_models.ENCODER_DECODERS else None
    return attnscope.trace(handle, TEXT, target=target, **kw)


# -- rollout ---------------------------------------------------------------------------------------


def test_rollout_of_identity_attention_is_identity() -> None:
    att = np.broadcast_to(np.eye(5, dtype=np.float32), (3, 2, 5, 5)).copy()
    out = contrib.rollout(_from_attention(att))
    assert out.shape == (3, 5, 5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(np.eye(5), out.shape), atol=1e-7)


def test_rollout_hand_computed() -> None:
    """Uniform attention over two tokens: Â = 0.5·(A + I) = [[.75, .25], [.25, .75]]; rollout multiplies."""
    t = _from_attention(np.full((2, 3, 2, 2), 0.5, dtype=np.float32))
    out = contrib.rollout(t)
    np.testing.assert_allclose(out[0], [[0.75, 0.25], [0.25, 0.75]], atol=1e-7)
    np.testing.assert_allclose(out[1], [[0.625, 0.375], [0.375, 0.625]], atol=1e-7)
    started = contrib.rollout(t, start_layer=1)
    np.testing.assert_allclose(started[0], np.eye(2), atol=1e-7)
    np.testing.assert_allclose(started[1], [[0.75, 0.25], [0.25, 0.75]], atol=1e-7)
    assert t.contributions["rollout.encoder"].params == {"start_layer": 1}


def test_rollout_matches_matrix_products_and_stays_causal() -> None:
    att = _random_attention(4, 3, 7, seed=0, causal=True)
    t = Trace.from_attentions(
        encoder_attention=[a[None] for a in _random_attention(1, 1, 3, 1)],
        decoder_attention=[a[None] for a in att],
        encoder_tokens=["a", "b", "c"],
        decoder_tokens=[f"d{i}" for i in range(7)],
    )
    out = contrib.rollout(t, "decoder")
    expected = np.eye(7)
    for layer in range(4):
        a = 0.5 * (att[layer].mean(0) + np.eye(7))
        expected = (a / a.sum(-1, keepdims=True)) @ expected
        np.testing.assert_allclose(out[layer], expected, atol=1e-6)
    assert np.all(np.triu(out, k=1) == 0)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-6)


# -- flow ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "n", "seed"), [(1, 4, 0), (2, 5, 1), (3, 6, 2), (4, 7, 3)])
def test_flow_equals_networkx_reference(layers: int, n: int, seed: int) -> None:
    att = _random_attention(layers, 4, n, seed)
    t = _from_attention(att)
    a = 0.5 * (att.astype(np.float64).mean(1) + np.eye(n))
    mats = a / a.sum(-1, keepdims=True)
    reference = flow_reference.compute_flows(mats)
    raw = contrib.flow(t, normalize=False)
    np.testing.assert_allclose(raw, reference, atol=1e-6, rtol=0)
    np.testing.assert_allclose(max_flow_all_pairs(mats), reference, atol=1e-7, rtol=0)
    normalised = contrib.flow(t)
    np.testing.assert_allclose(normalised, reference / reference.sum(-1, keepdims=True), atol=1e-6, rtol=0)
    assert t.contributions["flow.encoder"].params == {"layer": layers - 1, "normalize": True}


def test_flow_on_a_tiny_graph_by_hand() -> None:
    """Two layers, two tokens: every path has a bottleneck one can read off."""
    mats = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.3, 0.7]]])
    # source (2, 0) -> (1, 0) 0.6 -> (0, 1) 0.1 ; -> (1, 1) 0.4 -> (0, 1) 0.8: flow to (0, 1) = 0.1 + 0.4
    np.testing.assert_allclose(max_flow_all_pairs(mats)[0, 1], 0.5, atol=1e-8)
    np.testing.assert_allclose(max_flow_all_pairs(mats), flow_reference.compute_flows(mats), atol=1e-8)


def test_flow_of_an_earlier_layer_and_causal_decoder() -> None:
    att = _random_attention(3, 2, 6, seed=5, causal=True)
    t = Trace.from_attentions(
        decoder_attention=[a[None] for a in att],
        encoder_attention=[a[None] for a in _random_attention(1, 1, 2, 1)],
        encoder_tokens=["a", "b"],
        decoder_tokens=[f"d{i}" for i in range(6)],
    )
    a = 0.5 * (att[:2].astype(np.float64).mean(1) + np.eye(6))
    reference = flow_reference.compute_flows(a / a.sum(-1, keepdims=True))
    np.testing.assert_allclose(contrib.flow(t, "decoder", layer=1, normalize=False), reference, atol=1e-6)
    assert np.all(np.triu(reference, k=1) == 0)  # nothing flows from a later token


def test_flow_on_real_attention_equals_reference(minilm: Any) -> None:
    t = attnscope.trace(minilm, "Flow is exact.")
    a = 0.5 * (t.attention["encoder"].astype(np.float64).mean(1) + np.eye(len(t.tokens)))
    reference = flow_reference.compute_flows(a / a.sum(-1, keepdims=True))
    np.testing.assert_allclose(contrib.flow(t, normalize=False), reference, atol=1e-6, rtol=0)


# -- norm-based ------------------------------------------------------------------------------------


def _bert_block(handle: Any, text: str, layer: int) -> dict[str, Any]:
    """Layer input x, LayerNorm input and output of one BERT layer, caught by hooks, plus the weights."""
    import torch

    block = handle.model.encoder.layer[layer].attention
    seen: dict[str, Any] = {}
    hooks = [
        block.self.value.register_forward_hook(lambda m, a, out: seen.update(x=a[0])),
        block.output.LayerNorm.register_forward_hook(lambda m, a, out: seen.update(ln_in=a[0], ln_out=out)),
    ]
    try:
        t = attnscope.trace(handle, text, values=True)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        return {
            "trace": t,
            "x": seen["x"][0].double().numpy(),
            "ln_in": seen["ln_in"][0].double().numpy(),
            "ln_out": seen["ln_out"][0].double().numpy(),
            "wv": block.self.value.weight.double().numpy(),
            "bv": block.self.value.bias.double().numpy(),
            "wo": block.output.dense.weight.double().numpy(),
            "bo": block.output.dense.bias.double().numpy(),
            "gamma": block.output.LayerNorm.weight.double().numpy(),
            "beta": block.output.LayerNorm.bias.double().numpy(),
            "eps": block.output.LayerNorm.eps,
        }


def _f_direct(b: dict[str, Any], heads: int) -> np.ndarray:
    """f_h(x_j) = (x_j W_v + b_v)_h W_o,h straight from the module weights: [H, K, D]."""
    v = b["x"] @ b["wv"].T + b["bv"]  # [K, H·d]
    d = v.shape[-1] // heads
    return np.einsum("khd,hde->hke", v.reshape(len(v), heads, d), b["wo"].T.reshape(heads, d, -1))


def test_norms_equal_a_direct_einsum_from_the_module_weights(biased: Any) -> None:
    handle = biased("bert")
    b = _bert_block(handle, TEXT, layer=1)
    t = b["trace"]
    alpha = t.attention["encoder"][1].astype(np.float64)
    f = _f_direct(b, alpha.shape[0])
    vectors = np.einsum("hqk,hke->hqke", alpha, f)  # α_hij f_h(x_j)
    np.testing.assert_allclose(contrib.norms(t)[1], np.linalg.norm(vectors, axis=-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        contrib.norms_summed(t)[1], np.linalg.norm(vectors.sum(0), axis=-1), rtol=1e-4, atol=1e-5
    )
    assert contrib.norms(t).shape == t.attention["encoder"].shape


def test_mixing_is_the_layernorm_decomposition(biased: Any) -> None:
    """Σ_j of the per-token terms (+ LN of b_o, + β) gives the LayerNorm's real output; mixing is their norms."""
    handle = biased("bert")
    b = _bert_block(handle, TEXT, layer=1)
    t = b["trace"]
    alpha = t.attention["encoder"][1].astype(np.float64)
    f = _f_direct(b, alpha.shape[0])
    z = np.einsum("hqk,hke->qke", alpha, f)  # [Q, K, D]
    n = len(z)
    z[np.arange(n), np.arange(n)] += b["x"]  # the residual goes to the token itself
    z_in = z.sum(1) + b["bo"]
    np.testing.assert_allclose(z_in, b["ln_in"], atol=1e-4)  # the decomposition covers the LN's input
    std = np.sqrt(z_in.var(-1) + b["eps"])
    parts = (z - z.mean(-1, keepdims=True)) * b["gamma"] / std[:, None, None]
    bias_part = (b["bo"] - b["bo"].mean()) * b["gamma"] / std[:, None]
    np.testing.assert_allclose(parts.sum(1) + bias_part + b["beta"], b["ln_out"], atol=1e-4)
    np.testing.assert_allclose(contrib.mixing(t)[1], np.linalg.norm(parts, axis=-1), rtol=1e-4, atol=1e-5)
    ratio = contrib.mixing_ratio(t)
    m = np.linalg.norm(parts, axis=-1)
    np.testing.assert_allclose(ratio[1], 1 - np.diagonal(m) / m.sum(-1), atol=1e-5)


@pytest.mark.parametrize("family", ["distilbert", "bart", "marian", "roberta"])
def test_mixing_for_other_post_ln_families(biased: Any, family: str) -> None:
    t = _trace(biased(family), family, values=True)
    for stack in ("encoder", "decoder") if family in tiny_models.ENCODER_DECODERS else ("encoder",):
        out = contrib.mixing(t, stack)
        assert out.shape == t.attention[stack].shape[:1] + t.attention[stack].shape[2:]
        assert np.isfinite(out).all()
        assert (out > 0).any()


@pytest.mark.parametrize("family", tuple(tiny_models.CONFIGS))
def test_norms_for_every_family_and_stack(tiny: Any, family: str) -> None:
    t = _trace(tiny(family), family, values=True)
    for stack in t.stacks:
        per_head = contrib.norms(t, stack)
        summed = contrib.norms_summed(t, stack)
        assert per_head.shape == t.attention[stack].shape
        assert np.all(summed <= per_head.sum(1) + 1e-5)  # the triangle inequality
        if stack != "encoder" and handle_is_causal(t, stack):
            assert np.all(np.triu(summed, k=1) == 0)


def handle_is_causal(t: Trace, stack: str) -> bool:
    return stack == "decoder"


# -- value zeroing and gradient × input -----------------------------------------------------------


def _vz_brute(handle: Any, t: Trace, stack: str, family: str) -> np.ndarray:
    """Value zeroing one token at a time, batch of one, by a hook written here."""
    import torch

    from attnscope.adapters import SELF, adapter_for
    from attnscope.contrib.perturb import _inputs

    adapter = adapter_for(handle.info.model_type)
    path = adapter.stacks.get(stack, adapter.stacks.get(SELF))
    assert path is not None
    base = getattr(handle.model, "base_model", handle.model)
    layers = list(base.get_submodule(path.layers).children())
    inputs = _inputs(handle, t)
    q_len, k_len = t.attention[stack].shape[2:]
    out = np.zeros((len(layers), q_len, k_len))
    for li, layer in enumerate(layers):
        outs: list[Any] = []
        grab = layer.register_forward_hook(lambda m, a, o, outs=outs: outs.append(o[0] if isinstance(o, tuple) else o))
        with torch.no_grad():
            handle.model(**inputs)
        clean = outs[-1][0]
        attention = layer.get_submodule(path.attention) if path.attention else layer
        value = attention.get_submodule(adapter.query if adapter.fused else adapter.value)
        for j in range(k_len):

            def zero(m: Any, a: Any, o: Any, j: int = j) -> Any:
                o = o.clone()
                if adapter.fused:
                    o[0, j, 2 * o.shape[-1] // 3 :] = 0
                else:
                    o[0, j] = 0
                return o

            h = value.register_forward_hook(zero)
            try:
                with torch.no_grad():
                    handle.model(**inputs)
            finally:
                h.remove()
            changed = outs[-1][0]
            out[li, :, j] = 1 - torch.nn.functional.cosine_similarity(changed, clean, dim=-1).numpy()[:q_len]
        grab.remove()
    out = np.maximum(out, 0)
    return out / out.sum(-1, keepdims=True)


@pytest.mark.parametrize(
    ("family", "stack"),
    [("bert", "encoder"), ("gpt2", "decoder"), ("llama", "decoder"), ("t5", "cross"), ("bart", "decoder")],
)
def test_value_zeroing_equals_one_token_at_a_time(biased: Any, family: str, stack: str) -> None:
    handle = biased(family)
    t = _trace(handle, family)
    batched = contrib.value_zeroing(handle, t, stack, batch_size=5)  # several batches, a short last one
    assert batched.shape == t.attention[stack].shape[:1] + t.attention[stack].shape[2:]
    np.testing.assert_allclose(batched, _vz_brute(handle, t, stack, family), atol=2e-4)
    np.testing.assert_allclose(batched.sum(-1), 1.0, atol=1e-5)
    if stack == "decoder":  # zeroing a later token's value changes nothing before it
        assert np.abs(np.triu(batched[0], k=1)).max() < 1e-5


@pytest.mark.parametrize(("family", "stack"), [("bert", "encoder"), ("gpt2", "decoder"), ("bart", "cross")])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.autograd.functional.jacobian uses torch.jit
def test_gradient_x_input_equals_the_jacobian(biased: Any, family: str, stack: str) -> None:
    import torch

    from attnscope.contrib.perturb import _inputs

    handle = biased(family)
    target = "Le chat." if family in tiny_models.ENCODER_DECODERS else None
    t = attnscope.trace(handle, "The cat is sad today.", target=target)
    got = contrib.gradient_x_input(handle, t, stack, batch_size=4)
    inputs = _inputs(handle, t)
    ids = inputs.pop("input_ids")
    emb = handle.model.get_input_embeddings()(ids).detach()

    def last_hidden(e: Any) -> Any:
        out = handle.model(inputs_embeds=e, **inputs, return_dict=True)
        return out.last_hidden_state[0]

    jac = torch.autograd.functional.jacobian(last_hidden, emb, vectorize=True)[:, :, 0]  # [Q, D, K, D]
    expected = torch.einsum("qdke,ke->qkd", jac, emb[0]).norm(dim=-1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in tiny_models.CONFIGS if f != "xlm"])
def test_rerun_measures_for_every_family_and_stack(tiny: Any, family: str) -> None:
    handle = tiny(family)
    t = attnscope.trace(handle, "The cat is sad.", target="Le chat." if handle.info.is_encoder_decoder else None)
    for stack in t.stacks:
        layers, _, q_len, k_len = t.attention[stack].shape
        zeroed = contrib.value_zeroing(handle, t, stack)
        assert zeroed.shape == (layers, q_len, k_len)
        np.testing.assert_allclose(zeroed.sum(-1), 1.0, atol=1e-5)
        saliency = contrib.gradient_x_input(handle, t, stack)
        assert saliency.shape == (q_len, k_len)
        assert np.isfinite(saliency).all()
        assert (saliency > 0).any()


def test_value_zeroing_refuses_xlm_whose_layer_output_is_unknown(tiny: Any) -> None:
    t = attnscope.trace(tiny("xlm"), TEXT)
    with pytest.raises(UnsupportedModelError, match="only the attention modules"):
        contrib.value_zeroing(tiny("xlm"), t)
    assert contrib.gradient_x_input(tiny("xlm"), t).shape == t.attention["encoder"].shape[2:]


def test_measures_on_minilm(minilm: Any) -> None:
    t = attnscope.trace(minilm, "A short sentence about cats.", values=True)
    n = len(t.tokens)
    assert contrib.value_zeroing(minilm, t).shape == (6, n, n)
    assert contrib.gradient_x_input(minilm, t).shape == (n, n)
    assert contrib.mixing(t).shape == (6, n, n)


# -- storage ----------------------------------------------------------------------------------------


def test_contributions_are_saved_with_the_trace(biased: Any, tmp_path: Path) -> None:
    handle = biased("bert")
    t = _trace(handle, "bert", values=True)
    arrays = {
        "rollout.encoder": contrib.rollout(t, start_layer=1),
        "flow.encoder": contrib.flow(t),
        "mixing.encoder": contrib.mixing(t),
        "value_zeroing.encoder": contrib.value_zeroing(handle, t),
    }
    back = Trace.load(t.save(tmp_path / "t.safetensors"))
    assert set(back.contributions) == set(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(back.contributions[name].array, arr)
        assert back.contributions[name].measure == name.split(".")[0]
        assert back.contributions[name].stack == "encoder"
    assert back.contributions["rollout.encoder"].params == {"start_layer": 1}
    assert "contributions=" in repr(back)


# -- bad input --------------------------------------------------------------------------------------


def test_measures_needing_values_say_how_to_capture_them(tiny: Any) -> None:
    t = _trace(tiny("bert"), "bert")
    for measure in (contrib.norms, contrib.norms_summed, contrib.mixing):
        with pytest.raises(UnsupportedModelError, match=r"values=True"):
            measure(t)


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5", "xlm"])
def test_mixing_refuses_blocks_it_does_not_know(tiny: Any, family: str) -> None:
    t = _trace(tiny(family), family, values=True)
    with pytest.raises(UnsupportedModelError, match="post-LN"):
        contrib.mixing(t)


def test_model_without_value_capture(wordpiece: Any) -> None:
    import transformers

    from attnscope.loading import ModelHandle

    config = transformers.GPTNeoConfig(
        vocab_size=tiny_models.VOCAB, hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global"], 2]]
    )
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    handle = ModelHandle.from_model(model, wordpiece, "neo")
    with pytest.raises(UnsupportedModelError, match="supported families"):
        attnscope.trace(handle, TEXT, values=True)
    t = attnscope.trace(handle, TEXT)
    assert contrib.rollout(t).shape[0] == 2  # attention-only measures still work
    with pytest.raises(UnsupportedModelError, match="values=True"):
        contrib.norms(t)
    with pytest.raises(UnsupportedModelError, match="supported families"):
        contrib.value_zeroing(handle, t)


def test_rollout_and_flow_refuse_cross_attention(tiny: Any) -> None:
    t = _trace(tiny("t5"), "t5")
    for measure in (contrib.rollout, contrib.flow):
        with pytest.raises(InputError, match="self-attention stacks"):
            measure(t, "cross")
    with pytest.raises(InputError, match="stacks are"):
        contrib.rollout(_from_attention(np.full((1, 1, 2, 2), 0.5, dtype=np.float32)), "decoder")


def test_layer_arguments_out_of_range() -> None:
    t = _from_attention(np.full((3, 1, 2, 2), 0.5, dtype=np.float32))
    with pytest.raises(InputError, match=r"start_layer 3 is out of range.*0\.\.2"):
        contrib.rollout(t, start_layer=3)
    with pytest.raises(InputError, match="start_layer -1"):
        contrib.rollout(t, start_layer=-1)
    with pytest.raises(InputError, match=r"layer 5 is out of range"):
        contrib.flow(t, layer=5)
    assert contrib.flow(t, layer=-3).shape == (2, 2)


def test_flow_beyond_the_token_limit() -> None:
    n = contrib.FLOW_MAX_TOKENS + 1
    t = _from_attention(np.full((1, 1, n, n), 1 / n, dtype=np.float32))
    with pytest.raises(InputError, match=rf"limited to {contrib.FLOW_MAX_TOKENS} tokens.*has {n}.*rollout"):
        contrib.flow(t)


def test_rerun_measures_check_the_model(tiny: Any, minilm: Any) -> None:
    import dataclasses

    t = attnscope.trace(minilm, TEXT)
    t.tokens = dataclasses.replace(t.tokens, raw=tuple(r.upper() for r in t.tokens.raw))  # as another vocabulary
    with pytest.raises(InputError, match="does not tokenize"):
        contrib.value_zeroing(minilm, t)
    bare = _from_attention(np.full((1, 1, 2, 2), 0.5, dtype=np.float32))
    with pytest.raises(InputError, match="no source text"):
        contrib.gradient_x_input(minilm, bare)
    with pytest.raises(InputError, match="batch_size"):
        contrib.value_zeroing(minilm, attnscope.trace(minilm, TEXT), batch_size=0)
