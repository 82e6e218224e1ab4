"""Bad input gets a clear error; any language keeps its display forms, words and offsets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.errors import InputError, ModelLoadError, UnsupportedModelError
from attnscope.loading import ModelHandle


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(minilm: Any, text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        attnscope.trace(minilm, text)
    with pytest.raises(InputError, match="text_pair is empty"):
        attnscope.trace(minilm, "fine", text)


def test_text_over_model_length(minilm: Any) -> None:
    long_text = "word " * 600
    with pytest.raises(InputError, match=r"accepts at most 512.*truncation=True"):
        attnscope.trace(minilm, long_text)
    with pytest.warns(UserWarning, match="truncated to 512"):
        cut = attnscope.trace(minilm, long_text, truncation=True)
    assert cut.truncated
    assert len(cut.tokens) == 512
    assert cut.tokens.raw[-1] == "[SEP]"


def test_encoder_decoder_needs_target(tiny: Any) -> None:
    with pytest.raises(InputError, match="target="):
        attnscope.trace(tiny("t5"), "source only")
    with pytest.raises(InputError, match="only for encoder-decoder"):
        attnscope.trace(tiny("bert"), "text", target="not for encoders")


def test_unknown_model_offline() -> None:
    with pytest.raises(ModelLoadError, match="offline") as info:
        attnscope.load("no-such-org/no-such-model-xyz")
    assert "local folder" in str(info.value)


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        attnscope.load(tmp_path)
    with pytest.raises(ModelLoadError, match="no model folder"):
        attnscope.load(tmp_path / "missing")


def test_remote_code_stays_off(tmp_path: Path) -> None:
    config = {"model_type": "attnscope-custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "configuration_custom.py").write_text("raise SystemExit('remote code must not run')\n")
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        attnscope.load(tmp_path)


def test_bad_dtype_and_device() -> None:
    import torch

    with pytest.raises(ModelLoadError, match="unknown dtype"):
        attnscope.load(dtype="float13")
    with pytest.raises(ModelLoadError, match="unknown device"):
        attnscope.load(device="gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no usable CUDA"):
            attnscope.load(device="cuda")


def test_model_without_attention(wordpiece: Any) -> None:
    import transformers

    config = transformers.MambaConfig(hidden_size=32, num_hidden_layers=1, state_size=4, vocab_size=30522)
    handle = ModelHandle.from_model(transformers.AutoModel.from_config(config).eval(), wordpiece, "tiny-mamba")
    with pytest.raises(UnsupportedModelError, match="no usable attention"):
        attnscope.trace(handle, "hello world")


def test_sdpa_model_is_switched_to_eager(wordpiece: Any) -> None:
    import tiny_models

    model = tiny_models.build("bert")
    model.set_attn_implementation("sdpa")
    handle = ModelHandle.from_model(model, wordpiece)
    assert model.config._attn_implementation == "eager"
    assert attnscope.trace(handle, "hello").attention["encoder"].shape[:2] == (2, 4)


# -- any language --------------------------------------------------------------------------------

CORPUS = [
    "Größere Äpfel schmecken süßer als kleine Öfen.",
    "İstanbul'da ılık bir gün, ISPARTA ve ıspanak.",
    "東京は日本の首都です。",
    "I love pizza 🍕 and tea 🍵 today!",
]


@pytest.fixture(scope="module")
def multilingual() -> ModelHandle:
    """A tiny BERT with a WordPiece tokenizer trained here, without lowercasing or accent stripping."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    import tiny_models

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS * 3, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]"
    )
    model = tiny_models.build("bert", vocab_size=tok.get_vocab_size())
    return ModelHandle.from_model(model, fast, "tiny-multilingual")


@pytest.mark.parametrize("text", CORPUS)
def test_display_forms_words_and_offsets(multilingual: ModelHandle, text: str) -> None:
    result = attnscope.trace(multilingual, text)
    toks = result.tokens
    assert "[UNK]" not in toks.raw
    for i in np.flatnonzero(~toks.special):
        start, end = toks.offsets[i]
        assert toks.display[i] == text[start:end], (toks.raw[i], toks.display[i], text[start:end])
    expected_words = multilingual.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(
        multilingual.tokenizer.backend_tokenizer.normalizer.normalize_str(text)
    )
    assert toks.words() == [w for w, _ in expected_words]
    assert "".join(toks.words()).replace(" ", "") == text.replace(" ", "")


def test_pair_offsets_point_into_each_sentence(multilingual: ModelHandle) -> None:
    a, b = CORPUS[0], CORPUS[1]
    toks = attnscope.trace(multilingual, a, b).tokens
    assert toks.texts == (a, b)
    for i in np.flatnonzero(~toks.special):
        start, end = toks.offsets[i]
        assert toks.display[i] == toks.texts[toks.segment[i]][start:end]
    assert toks.words()[-1] == "."
    assert toks.word_ids.max() + 1 == len(toks.words())


def test_byte_level_display_forms() -> None:
    from attnscope.tokens import Tokens, display_form

    assert display_form("\u0120cat", byte_level=True) == "cat"
    assert display_form("\u00c3\u00a9t\u00c3\u00a9", byte_level=True) == "été"
    assert display_form("\u010a", byte_level=True) == "\u23ce"
    assert display_form("\u2581Haus") == "Haus"
    assert display_form("##ing") == "ing"
    toks = Tokens.from_strings(["<s>", "\u0120The", "\u0120c", "at", "</s>"])
    assert toks.word_ids.tolist() == [-1, 0, 1, 1, -1]
    assert toks.special.tolist() == [True, False, False, False, True]
