"""The README's BertViz samples (rewritten for transformers 5) run as written, offline, on the embedded MiniLM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from attnscope.errors import InputError
from attnscope.loading import default_model_path
from attnscope.views import head_view

README = Path(__file__).resolve().parents[1] / "README.md"


def _samples() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"<!-- sample: (\w+) -->\n```python\n(.*?)```", text, flags=re.DOTALL)
    return dict(found)


def test_the_three_samples_run_in_order() -> None:
    samples = _samples()
    assert list(samples) == ["head_view", "model_view", "neuron_view"]
    namespace: dict[str, Any] = {}
    results = {}
    for name, code in samples.items():
        # The Hub is out of reach in tests: the embedded MiniLM is a BertModel with a WordPiece tokenizer.
        code = code.replace('"bert-base-uncased"', repr(str(default_model_path())))
        *body, last = code.rstrip().splitlines()
        exec("\n".join(body), namespace)  # the README's own sample code
        results[name] = eval(last.split("  #")[0], namespace)
    head, model, neuron = results["head_view"], results["model_view"], results["neuron_view"]
    assert (head.kind, model.kind, neuron.kind) == ("head", "model", "neuron")
    tokens = namespace["tokens"]
    assert head.trace.tokens.sentence_b_start == tokens.index("[SEP]") + 1
    assert model.trace.attention["encoder"].shape == (6, 12, len(tokens), len(tokens))
    assert (neuron.options.layer, neuron.options.heads) == (2, (0,))
    assert neuron.trace.model.name == default_model_path().name  # a folder's name, not its path
    from_output = head_view(namespace["outputs"], tokens, namespace["sentence_b_start"])
    assert (from_output.trace.attention["encoder"] == head.trace.attention["encoder"]).all()


def test_the_old_indexing_says_what_to_use(minilm: Any) -> None:
    enc = minilm.tokenizer("The cat sat.", return_tensors="pt")
    outputs = minilm.model(**enc, output_attentions=True)
    tokens = minilm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    with pytest.raises(InputError, match=r"model\(\.\.\.\)\[-1\] is the empty cross_attentions.*outputs\.attentions"):
        head_view(outputs[-1], tokens)
    with pytest.raises(InputError, match=r"holds no attention: run the model with output_attentions=True"):
        head_view(minilm.model(**enc), tokens)


def test_an_encoder_decoder_output_object_is_accepted(tiny: Any) -> None:
    import torch

    handle = tiny("bart")
    src = handle.tokenizer("The cat is sad.", return_tensors="pt")
    tgt = handle.tokenizer("Le chat est triste.", return_tensors="pt")
    with torch.no_grad():
        outputs = handle.model(**src, decoder_input_ids=tgt["input_ids"], output_attentions=True)
    enc_tokens = handle.tokenizer.convert_ids_to_tokens(src["input_ids"][0])
    dec_tokens = handle.tokenizer.convert_ids_to_tokens(tgt["input_ids"][0])
    view = head_view(outputs, encoder_tokens=enc_tokens, decoder_tokens=dec_tokens)
    assert view.trace.stacks == ("encoder", "decoder", "cross")
    assert view.trace.attention["cross"].shape[2:] == (len(dec_tokens), len(enc_tokens))
