"""Predictions and masking (attnscope.predict): real trained tiny models, checked against Hugging Face itself.

tiny-bert-mlm-ewt (masked LM) and tiny-gpt2-ewt (decoder) are weak but real (see their cards): the BERT
fills a masked sentence-initial "i" or the "you" of "thank you for your help ." at rank 1; the GPT-2 says
"have" after "i do not" and "states" after "in the united". Tiny random models cover shapes and families.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
import tiny_models
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.loading import ModelHandle
from attnscope.predict import LENS, predict

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
BERT, GPT2 = MODELS / "tiny-bert-mlm-ewt", MODELS / "tiny-gpt2-ewt"
EOT = "<|endoftext|>"  # tiny-gpt2-ewt saw it before every training sentence (its card)


def _folder(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(
            f"the trained tiny model is not at {path} (../shared/models lies beside the checkout in dev and CI)"
        )
    return path


@pytest.fixture(scope="module")
def bert() -> ModelHandle:
    return attnscope.load(_folder(BERT), device="cpu", lm_head=True)


@pytest.fixture(scope="module")
def gpt2() -> ModelHandle:
    return attnscope.load(_folder(GPT2), device="cpu", lm_head=True)


def _hf(path: Path, auto: str) -> tuple[Any, Any]:
    """The model as Hugging Face loads it itself, independent of attnscope."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = getattr(transformers, auto).from_pretrained(path, attn_implementation="eager").eval()
    return tok, model


def _hf_run(model: Any, ids: list[int], **kwargs: Any) -> Any:
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), output_attentions=True, **kwargs)


def _tiny_lm(family: str, tokenizer: Any) -> ModelHandle:
    """A tiny random model of ``family`` with its LM head (tiny_models builds bare ones)."""
    import torch
    import transformers

    cls_name, kwargs = tiny_models.CONFIGS[family]
    config = getattr(transformers, cls_name)(vocab_size=tiny_models.VOCAB, **kwargs)
    auto = {"t5": "Seq2SeqLM", "bart": "Seq2SeqLM", "gpt2": "CausalLM", "llama": "CausalLM"}.get(family, "MaskedLM")
    torch.manual_seed(0)
    model = getattr(transformers, f"AutoModelFor{auto}").from_config(config, attn_implementation="eager")
    return ModelHandle.from_model(model.eval(), tokenizer, f"tiny-{family}-lm")


@pytest.fixture(scope="module")
def tiny_lm(wordpiece: Any) -> Callable[[str], ModelHandle]:
    cache: dict[str, ModelHandle] = {}

    def make(family: str) -> ModelHandle:
        if family not in cache:
            cache[family] = _tiny_lm(family, wordpiece)
        return cache[family]

    return make


# -- loading with the LM head ------------------------------------------------------------------------


def test_lm_head_loads_the_class_the_config_names(bert: ModelHandle, gpt2: ModelHandle, minilm: ModelHandle) -> None:
    assert (type(bert.model).__name__, bert.lm_kind) == ("BertForMaskedLM", "masked")
    assert (type(gpt2.model).__name__, gpt2.lm_kind) == ("GPT2LMHeadModel", "causal")
    assert minilm.lm_kind is None  # its config names BertModel: bare, with or without lm_head
    bare_minilm = attnscope.load(device="cpu", lm_head=True)
    assert (type(bare_minilm.model).__name__, bare_minilm.lm_kind) == ("BertModel", None)
    assert bert.model.config._attn_implementation == "eager"
    assert attnscope.load(_folder(BERT), device="cpu").lm_kind is None  # default: bare, as before


@pytest.mark.parametrize(("path", "text", "pair"), [(BERT, "the cat sat on the mat .", "it was happy ."),
                                                    (GPT2, f"{EOT}the cat sat on the mat .", None)])  # fmt: skip
def test_traces_with_the_lm_head_equal_the_bare_models(path: Path, text: str, pair: str | None) -> None:
    bare = attnscope.load(_folder(path), device="cpu")
    with_head = attnscope.load(path, device="cpu", lm_head=True)
    a = attnscope.trace(bare, text, pair, qk=True, values=True)
    b = attnscope.trace(with_head, text, pair, qk=True, values=True)
    assert a.tokens == b.tokens
    # Same model facts; only the class name differs (the one loaded, e.g. BertForMaskedLM rather than BertModel).
    assert dataclasses.replace(a.model, architecture="") == dataclasses.replace(b.model, architecture="")
    assert a.attention.keys() == b.attention.keys()
    for stack in a.attention:
        np.testing.assert_array_equal(a.attention[stack], b.attention[stack])
        for name, array in a.qk[stack].arrays().items():  # q/k found under the wrapper (base_model)
            np.testing.assert_array_equal(array, b.qk[stack].arrays()[name])
        for name, array in a.values[stack].arrays().items():
            np.testing.assert_array_equal(array, b.values[stack].arrays()[name])


def test_lm_head_load_keeps_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(attnscope.AttnscopeError, match=r"no config\.json"):
        attnscope.load(tmp_path, device="cpu", lm_head=True)


# -- real predictions: masked LM ----------------------------------------------------------------------


def test_masked_lm_fills_an_easy_mask_and_matches_hugging_face(bert: ModelHandle) -> None:
    result = predict(bert, "thank you for your help .", mask=[2], k=5)
    assert result.kind == "masked"
    assert result.original.tokens.display == ("[CLS]", "thank", "you", "for", "your", "help", ".", "[SEP]")
    assert result.trace.tokens.display[2] == "[MASK]"
    assert result.trace.tokens.display[3] == "for"
    (only,) = result.predictions
    assert (only.position, only.token) == (2, "[MASK]")
    assert only.top[0].token == "you"  # the true word, at rank 1
    assert [e.__dict__ for e in result.edits] == [{"index": 2, "token": "you", "now": "[MASK]"}]

    tok, model = _hf(BERT, "AutoModelForMaskedLM")
    ids = tok("thank [MASK] for your help .")["input_ids"]
    out = _hf_run(model, ids)
    probs = out.logits[0, 2].softmax(-1).numpy()
    expected = np.argsort(-probs)[:5]
    assert [c.token_id for c in only.top] == expected.tolist()
    np.testing.assert_allclose([c.prob for c in only.top], probs[expected], rtol=1e-5)
    for layer, att in enumerate(out.attentions):  # the edited trace is what the model saw
        np.testing.assert_allclose(result.trace.attention["encoder"][layer], att[0].numpy(), atol=1e-6)
    assert not np.allclose(result.trace.attention["encoder"], result.original.attention["encoder"])


def test_masked_lm_predicts_at_every_mask_typed_or_asked(bert: ModelHandle) -> None:
    result = predict(bert, "[MASK] went to the store yesterday .", "i went home .", mask=[9], k=3)
    assert [p.position for p in result.predictions] == [1, 9]
    assert result.predictions[0].top[0].token == "i"  # a sentence-initial "i": rank 1
    assert all(len(p.top) == 3 for p in result.predictions)
    assert list(result.trace.tokens.segment) == list(result.original.tokens.segment)  # the pair keeps its segments


def test_no_mask_traces_once(bert: ModelHandle) -> None:
    result = predict(bert, "i do not know .")
    assert result.original is result.trace
    assert result.edits == []
    assert result.predictions == []
    np.testing.assert_array_equal(
        result.trace.attention["encoder"], attnscope.trace(bert, "i do not know .").attention["encoder"]
    )


# -- real predictions: decoder --------------------------------------------------------------------------


@pytest.mark.parametrize(("context", "word"), [("i do not", "have"), ("in the united", "states")])
def test_decoder_predicts_the_next_token_as_hugging_face_does(gpt2: ModelHandle, context: str, word: str) -> None:
    result = predict(gpt2, EOT + context, k=5)
    (only,) = result.predictions
    assert result.kind == "next"
    assert only.position == len(result.trace.tokens) - 1
    assert only.top[0].token == word
    tok, model = _hf(GPT2, "AutoModelForCausalLM")
    probs = _hf_run(model, tok(EOT + context)["input_ids"]).logits[0, -1].softmax(-1).numpy()
    expected = np.argsort(-probs)[:5]
    assert [c.token_id for c in only.top] == expected.tolist()
    np.testing.assert_allclose([c.prob for c in only.top], probs[expected], rtol=1e-5)


def test_decoder_without_mask_token_removes_the_masked_tokens(gpt2: ModelHandle) -> None:
    text = EOT + "thank you for your"
    original = attnscope.trace(gpt2, text).tokens
    masked = original.display.index("you")
    result = predict(gpt2, text, mask=[masked])
    assert result.trace.tokens.display == tuple(t for i, t in enumerate(original.display) if i != masked)
    assert [(e.index, e.token, e.now) for e in result.edits] == [(masked, "you", None)]
    assert result.to_json()["edits"] == [{"index": masked, "token": "you", "now": None}]
    assert result.trace.tokens.words() == [w for w in original.words() if w.strip() != "you"]
    tok, model = _hf(GPT2, "AutoModelForCausalLM")
    ids = [t for i, t in enumerate(tok(text)["input_ids"]) if i != masked]
    out = _hf_run(model, ids)
    for layer, att in enumerate(out.attentions):
        np.testing.assert_allclose(result.trace.attention["decoder"][layer], att[0].numpy(), atol=1e-6)
    assert result.predictions[0].top[0].token_id == int(out.logits[0, -1].argmax())


# -- logit lens ------------------------------------------------------------------------------------------


def test_logit_lens_last_layer_is_the_prediction_and_earlier_layers_match_hugging_face(gpt2: ModelHandle) -> None:
    import torch

    result = predict(gpt2, EOT + "i would like to", k=4, logit_lens=True)
    (only,) = result.predictions
    assert only.layers is not None
    assert len(only.layers) == gpt2.info.num_layers == 2
    assert [c.token_id for c in only.layers[-1]] == [c.token_id for c in only.top]
    np.testing.assert_allclose([c.prob for c in only.layers[-1]], [c.prob for c in only.top], rtol=1e-5)
    tok, model = _hf(GPT2, "AutoModelForCausalLM")
    out = _hf_run(model, tok(EOT + "i would like to")["input_ids"], output_hidden_states=True)
    # Layer 0 by hand: its output (hidden_states[1], before the final norm) through ln_f and lm_head.
    with torch.inference_mode():
        probs = model.lm_head(model.transformer.ln_f(out.hidden_states[1][0, -1])).softmax(-1).numpy()
    expected = np.argsort(-probs)[:4]
    assert [c.token_id for c in only.layers[0]] == expected.tolist()
    np.testing.assert_allclose([c.prob for c in only.layers[0]], probs[expected], rtol=1e-5)
    assert result.to_json()["lens"] == LENS == "logit lens"


def test_logit_lens_of_a_masked_lm(bert: ModelHandle) -> None:
    result = predict(bert, "i went to the store yesterday .", mask=[1, 5], k=3, logit_lens=True)
    for p in result.predictions:
        assert p.layers is not None
        assert len(p.layers) == 4
        assert [c.token_id for c in p.layers[-1]] == [c.token_id for c in p.top]
        np.testing.assert_allclose([c.prob for c in p.layers[-1]], [c.prob for c in p.top], rtol=1e-5)
    assert predict(bert, "i went home .", mask=[1]).to_json()["predictions"][0]["layers"] is None


# -- no LM head, random tiny models, errors --------------------------------------------------------------


def test_a_model_without_lm_head_edits_but_predicts_nothing(minilm: ModelHandle) -> None:
    result = predict(minilm, "the cat sat on the mat .", mask=[2], logit_lens=True)
    assert result.kind is None
    assert result.predictions == []
    assert not result.lens
    assert result.trace.tokens.display[2] == "[MASK]"
    assert result.original.tokens.display[2] == "cat"
    assert result.to_json() == {
        "kind": None,
        "lens": None,
        "edits": [{"index": 2, "token": "cat", "now": "[MASK]"}],
        "predictions": [],
    }


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "distilbert", "gpt2", "llama"])
def test_tiny_lm_families_give_k_ranked_predictions(tiny_lm: Callable[[str], ModelHandle], family: str) -> None:
    handle = tiny_lm(family)
    result = predict(handle, "the cat sat on the mat .", mask=[2, 4], k=7, logit_lens=True, qk=True, values=True)
    n = len(result.trace.tokens)  # the shared WordPiece tokenizer ends every input with [SEP]
    assert [p.position for p in result.predictions] == ([2, 4] if result.kind == "masked" else [n - 2])
    assert result.kind == ("next" if family in ("gpt2", "llama") else "masked")
    assert result.trace.qk
    assert result.trace.values
    for p in result.predictions:
        probs = [c.prob for c in p.top]
        assert len(probs) == 7
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert p.layers is not None
        assert [c.token_id for c in p.layers[-1]] == [c.token_id for c in p.top]
    json.dumps(result.to_json())  # plain JSON


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_encoder_decoder_predicts_the_next_target_token(tiny_lm: Callable[[str], ModelHandle], family: str) -> None:
    handle = tiny_lm(family)
    assert handle.lm_kind == "seq2seq"
    result = predict(handle, "the cat sat .", target="die katze", mask=[2], k=3, qk=True, values=True)
    assert result.trace.target_tokens is not None
    (only,) = result.predictions
    assert result.kind == "next"
    assert only.position == len(result.trace.target_tokens) - 2  # after "katze", not after the closing [SEP]
    assert only.token == result.trace.target_tokens.display[-2]
    assert result.trace.tokens.display[2] == "[MASK]"
    assert set(result.trace.qk) == set(result.trace.values) == {"encoder", "decoder", "cross"}
    with pytest.raises(UnsupportedModelError, match="logit lens"):
        predict(handle, "the cat sat .", target="die katze", logit_lens=True)


@pytest.mark.parametrize(
    ("mask", "k", "message"),
    [
        ([0], 5, "special token"),
        ([99], 5, "has 9 tokens"),
        ([-1], 5, "has 9 tokens"),
        (["2"], 5, "whole numbers"),
        ([True], 5, "whole numbers"),
        ("2", 5, "not text"),
        (3, 5, "list of token indices"),
        ([], 0, "at least 1"),
        ([], 2.5, "at least 1"),
    ],
)
def test_bad_masks_and_k_are_input_errors(tiny: Callable[[str], ModelHandle], mask: Any, k: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        predict(tiny("bert"), "the cat sat on the mat .", mask=mask, k=k)


def test_removing_every_word_is_an_input_error(gpt2: ModelHandle) -> None:
    tokens = attnscope.trace(gpt2, EOT + "hello").tokens
    with pytest.raises(InputError, match="remove all the text"):
        predict(gpt2, EOT + "hello", mask=[i for i in range(len(tokens)) if not tokens.special[i]])


def test_k_above_the_vocabulary_gives_the_whole_vocabulary(bert: ModelHandle) -> None:
    (only,) = predict(bert, "i went home .", mask=[2], k=100_000).predictions
    assert len(only.top) == 8000
    assert sum(c.prob for c in only.top) == pytest.approx(1, abs=1e-4)


# -- the command line ----------------------------------------------------------------------------------


def test_cli_prints_predictions_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    from attnscope.cli import main

    model = str(_folder(BERT))
    assert main(["predict", "thank you for your help .", "--mask", "2", "--model", model, "-k", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["edits"] == [{"index": 2, "token": "you", "now": "[MASK]"}]
    assert printed["predictions"][0]["top"][0]["token"] == "you"
    assert len(printed["predictions"][0]["top"]) == 2
    assert main(["predict", "thank you for your help .", "--mask", "2", "--model", model, "--logit-lens"]) == 0
    out = capsys.readouterr().out
    assert "masked:  2 you -> [MASK]" in out
    assert "at 2 ([MASK]): you 0." in out
    assert "logit lens, layer 3: you 0." in out


def test_cli_bad_mask_is_one_line_and_exit_2(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from attnscope.cli import main

    assert main(["predict", "the cat sat .", "--mask", "0", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "attnscope: error: cannot mask token 0 ([CLS]): it is a special token the tokenizer adds"
    assert main(["predict", "the cat sat .", "--mask", "2", "--model", str(tiny_model_dir)]) == 0
    assert "no LM head" in capsys.readouterr().out  # a bare BertModel folder: the edit, no predictions
