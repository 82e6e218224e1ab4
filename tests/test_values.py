"""Value capture: for every adapter and stack, the attention block's output rebuilt from alpha, the captured
value vectors and the W_o slices (+ b_o) equals the output projection's real output; values survive save/load."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
import tiny_models
from attnscope.adapters import SELF, adapter_for
from attnscope.traces import Trace

TEXT = "The cat is very sad because it could not find any food to eat today."
TARGET = "Le chat est triste."
ATOL = 1e-5
SHARP: dict[str, dict[str, Any]] = {"xlm": {"init_std": 0.15}, "bart": {"init_std": 0.15}, "marian": {"init_std": 0.15}}


@pytest.fixture(scope="module")
def sharp(wordpiece: Any) -> Any:
    """Factory: a tiny model of a family with far-from-uniform attention and non-trivial biases (cached)."""
    from attnscope.loading import ModelHandle

    cache: dict[str, Any] = {}

    def make(family: str) -> Any:
        if family not in cache:
            overrides = SHARP.get(family, {} if family == "t5" else {"initializer_range": 0.15})
            model = tiny_models.build(family, **overrides)
            _randomise_biases(model)
            cache[family] = ModelHandle.from_model(model, wordpiece, f"sharp-{family}")
        return cache[family]

    return make


def _randomise_biases(model: Any) -> None:
    """Initialisation zeroes biases; random ones make a forgotten b_o or value bias show."""
    import torch

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _trace_with_outputs(handle: Any, family: str) -> tuple[Trace, dict[str, np.ndarray]]:
    """Trace with values, and each stack's real output-projection outputs [L, Q, D], caught by hooks."""
    adapter = adapter_for(handle.info.model_type)
    base = getattr(handle.model, "base_model", handle.model)
    seen: dict[str, list[Any]] = {}
    hooks = []
    for key, path in adapter.stacks.items():
        stack = key if key != SELF else ("decoder" if handle.info.is_causal else "encoder")
        for layer in base.get_submodule(path.layers).children():
            module = layer.get_submodule(path.output)
            hooks.append(module.register_forward_hook(lambda m, a, out, s=stack: seen.setdefault(s, []).append(out)))
    try:
        target = TARGET if family in tiny_models.ENCODER_DECODERS else None
        t = attnscope.trace(handle, TEXT, target=target, values=True)
    finally:
        for h in hooks:
            h.remove()
    return t, {s: np.stack([o[0].float().numpy() for o in outs]) for s, outs in seen.items()}


def _assert_values_rebuild(t: Trace, real: dict[str, np.ndarray]) -> None:
    assert set(t.values) == set(t.attention) == set(real)
    assert not t.qk  # values=True alone does not store q/k
    for stack, values in t.values.items():
        layers, heads, _q_len, k_len = t.attention[stack].shape
        d = values.vectors.shape[-1]
        width = real[stack].shape[-1]
        assert values.vectors.shape == (layers, heads, k_len, d)
        assert values.out_weight.shape == (layers, heads, d, width)
        assert values.out_bias is None or values.out_bias.shape == (layers, width)
        np.testing.assert_allclose(values.rebuild(t.attention[stack]), real[stack], atol=ATOL, rtol=0, err_msg=stack)


@pytest.mark.parametrize("family", tuple(tiny_models.CONFIGS))
def test_block_output_rebuilds_from_alpha_v_and_wo(sharp: Any, family: str) -> None:
    t, real = _trace_with_outputs(sharp(family), family)
    _assert_values_rebuild(t, real)
    for stack, values in t.values.items():  # the check has power: a wrong head order or no bias shows
        swapped = dataclasses.replace(values, out_weight=values.out_weight[:, ::-1].copy())
        assert np.abs(swapped.rebuild(t.attention[stack]) - real[stack]).max() > 1e-3, stack
        if values.out_bias is not None:
            unbiased = dataclasses.replace(values, out_bias=None)
            assert np.abs(unbiased.rebuild(t.attention[stack]) - real[stack]).max() > 1e-3, stack


def test_minilm_values(minilm: Any) -> None:
    t, real = _trace_with_outputs(minilm, "bert")
    _assert_values_rebuild(t, real)
    values = t.values["encoder"]
    n = len(t.tokens)
    assert values.vectors.shape == (6, 12, n, 32)
    assert values.out_weight.shape == (6, 12, 32, 384)
    assert values.residual is not None
    assert values.residual.shape == (6, n, 384)
    assert values.norm_weight is not None
    assert values.norm_eps is not None
    np.testing.assert_allclose(values.norm_eps, 1e-12)


def test_post_ln_residual_is_the_block_input(sharp: Any) -> None:
    """residual + block output through the captured LayerNorm weights gives the attention sublayer's output."""
    handle = sharp("bert")
    seen: list[Any] = []
    norm = handle.model.encoder.layer[1].attention.output.LayerNorm
    hook = norm.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        t, real = _trace_with_outputs(handle, "bert")
    finally:
        hook.remove()
    values = t.values["encoder"]
    assert values.residual is not None
    assert values.norm_weight is not None
    assert values.norm_eps is not None
    z = values.residual[1] + real["encoder"][1]
    mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
    normed = (z - mean) / np.sqrt(var + values.norm_eps[1]) * values.norm_weight[1] + norm.bias.detach().numpy()
    np.testing.assert_allclose(normed, seen[0][0].detach().numpy(), atol=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5", "xlm"])
def test_pre_ln_families_have_no_norm_terms(tiny: Any, family: str) -> None:
    target = TARGET if family in tiny_models.ENCODER_DECODERS else None
    t = attnscope.trace(tiny(family), TEXT, target=target, values=True)
    for values in t.values.values():
        assert values.residual is None
        assert values.norm_weight is None


def test_bart_cross_has_no_norm_terms_but_self_stacks_do(tiny: Any) -> None:
    t = attnscope.trace(tiny("bart"), TEXT, target=TARGET, values=True)
    assert t.values["encoder"].residual is not None
    assert t.values["decoder"].residual is not None
    assert t.values["cross"].residual is None


@pytest.mark.parametrize("family", ["qwen2", "marian"])
def test_values_survive_save_and_load(sharp: Any, family: str, tmp_path: Path) -> None:
    t, real = _trace_with_outputs(sharp(family), family)
    back = Trace.load(t.save(tmp_path / "t.safetensors"))
    assert set(back.values) == set(t.values)
    for stack, values in t.values.items():
        loaded = back.values[stack]
        assert loaded.arrays().keys() == values.arrays().keys()
        for name, arr in values.arrays().items():
            np.testing.assert_array_equal(loaded.arrays()[name], arr)
    _assert_values_rebuild(back, real)


def test_grouped_query_value_heads_shared(sharp: Any) -> None:
    t, _ = _trace_with_outputs(sharp("qwen2"), "qwen2")  # one kv head for four query heads
    vectors = t.values["decoder"].vectors
    for head in range(1, vectors.shape[1]):
        np.testing.assert_array_equal(vectors[:, head], vectors[:, 0])


def test_version_1_files_still_load(tiny: Any, tmp_path: Path) -> None:
    """A file as attnscope wrote it before values existed (format version 1) loads unchanged."""
    import json

    from safetensors.numpy import load_file, save_file

    path = attnscope.trace(tiny("bert"), TEXT, qk=True).save(tmp_path / "t.safetensors")
    with path.open("rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    meta = json.loads(header["__metadata__"]["attnscope"])
    assert meta["format_version"] == 2
    meta["format_version"] = 1
    old = tmp_path / "v1.safetensors"
    save_file(load_file(str(path)), str(old), metadata={"attnscope": json.dumps(meta)})
    back = Trace.load(old)
    assert set(back.qk) == {"encoder"}
    assert not back.values
    assert not back.contributions


def test_a_newer_format_version_is_refused_clearly(tiny: Any, tmp_path: Path) -> None:
    import json

    from safetensors.numpy import load_file, save_file

    from attnscope.errors import TraceFileError

    path = attnscope.trace(tiny("bert"), TEXT).save(tmp_path / "t.safetensors")
    with path.open("rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    meta = json.loads(header["__metadata__"]["attnscope"])
    meta["format_version"] = 3
    newer = tmp_path / "v3.safetensors"
    save_file(load_file(str(path)), str(newer), metadata={"attnscope": json.dumps(meta)})
    with pytest.raises(TraceFileError, match=r"version 3; this attnscope reads versions 1, 2"):
        Trace.load(newer)


def test_cli_trace_values(minilm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`attnscope trace --values` saves a trace that the contribution measures can use."""
    from attnscope import contrib
    from attnscope.cli import main

    out = tmp_path / "t.safetensors"
    assert main(["trace", "The cat sat on the mat.", "--values", "-o", str(out)]) == 0
    assert "+ values" in capsys.readouterr().out
    saved = Trace.load(out)
    direct = attnscope.trace(minilm, "The cat sat on the mat.", values=True)
    np.testing.assert_allclose(contrib.mixing(saved), contrib.mixing(direct), atol=1e-5)
