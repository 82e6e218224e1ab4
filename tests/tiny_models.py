"""Tiny random-weight models of every supported family, built from configs (2 layers, 4 heads, width 32).

They share the embedded MiniLM's WordPiece tokenizer (vocabulary 30,522), so any text can be traced.
"""

from __future__ import annotations

from typing import Any

VOCAB = 30522
PAD, CLS, SEP = 0, 101, 102

# family -> (config class name, config kwargs). Small, but every mechanism of the family is on.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("BertConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}),
    "roberta": ("RobertaConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 600, "pad_token_id": 1}),
    "xlm-roberta": ("XLMRobertaConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 600, "pad_token_id": 1}),
    "electra": ("ElectraConfig", {"embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}),
    "distilbert": ("DistilBertConfig", {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}),
    "xlm": ("XLMConfig", {"emb_dim": 32, "n_layers": 2, "n_heads": 4, "causal": False}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 512, "bos_token_id": CLS, "eos_token_id": SEP}),
    "llama": ("LlamaConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 4096}),
    "mistral": ("MistralConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 4096, "sliding_window": 8}),
    "qwen2": ("Qwen2Config", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 4096}),
    "t5": ("T5Config", {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "decoder_start_token_id": PAD, "pad_token_id": PAD, "eos_token_id": SEP}),
    "bart": ("BartConfig", {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 512, "pad_token_id": PAD, "bos_token_id": CLS, "eos_token_id": SEP, "decoder_start_token_id": SEP}),
    "marian": ("MarianConfig", {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 512, "pad_token_id": PAD, "eos_token_id": SEP, "decoder_start_token_id": PAD}),
}  # fmt: skip

ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "xlm")
DECODERS = ("gpt2", "llama", "mistral", "qwen2")
ENCODER_DECODERS = ("t5", "bart", "marian")


def build(family: str, seed: int = 0, **overrides: Any) -> Any:
    """A tiny random-weight model of ``family`` in eval mode with eager attention."""
    import torch
    import transformers

    cls_name, kwargs = CONFIGS[family]
    config = getattr(transformers, cls_name)(**{"vocab_size": VOCAB, **kwargs, **overrides})
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager")
    return model.eval()
