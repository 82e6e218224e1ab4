"""What the API's requests compute, in plain functions a worker thread runs under the model's lock.

Each returns the JSON-ready dict its endpoint sends; bad input raises :class:`attnscope.errors.InputError`
(HTTP 422). Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnscope.app.requests import SearchRequest, TraceRequest
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.loading import ModelHandle

if TYPE_CHECKING:
    from attnscope.index import SearchIndex

WARM_UP_TEXT = "The cat is very sad."


def supports_qk(handle: ModelHandle) -> bool:
    """Trace a short text once with queries and keys (this also warms the model up): whether the neuron
    view can be offered for this model."""
    from attnscope.tracing import trace

    try:
        trace(handle, WARM_UP_TEXT, qk=True)
    except UnsupportedModelError:
        trace(handle, WARM_UP_TEXT)
        return False
    return True


def check_length(handle: ModelHandle, text: str, text_pair: str | None) -> int:
    """The input's length in tokens; an InputError that states the limit when the model cannot take it."""
    enc = handle.tokenizer(text, text_pair)
    n = len(enc["input_ids"])
    limit = handle.max_length
    if limit is not None and n > limit:
        raise InputError(f"the text is {n} tokens long but {handle.name} accepts at most {limit} tokens; shorten it")
    return n


def trace_json(handle: ModelHandle, req: TraceRequest, qk: bool) -> dict[str, Any]:
    """``POST /api/trace``: the views payload of the (edited) input, with tokens, comparison and predictions.

    One :func:`attnscope.predict.predict` call: the edited input's trace and predictions in one forward pass
    (and the original's trace in a second when tokens are masked); the comparison view pairs the two.
    """
    from attnscope.predict import predict
    from attnscope.views import compare_view, page

    check_length(handle, req.text, req.text_pair)
    result = predict(handle, req.text, req.text_pair, mask=req.mask, k=req.k, logit_lens=req.logit_lens, qk=qk)
    compare = None
    if result.edits:
        compare = compare_view(result.original, result.trace, labels=("original", "edited")).payload()
    return {
        "tokens": list(result.trace.tokens.display),
        "payload": page(result.trace).payload(),
        "compare": compare,
        "predictions": result.to_json(),
    }


def search_json(index: SearchIndex, handle: ModelHandle, req: SearchRequest) -> dict[str, Any]:
    """``POST /api/search``: the k corpus contexts of ``index`` nearest to token ``req.token`` of the text."""
    check_length(handle, req.text, req.text_pair)
    found = index.search(
        handle, req.text, token=req.token, layer=req.layer, heads=req.heads, k=req.k, text_pair=req.text_pair
    )
    result: dict[str, Any] = found.to_json()
    return result


def atlas_payload(atlas: Any, handle: ModelHandle) -> Any:
    """The atlas view's payload of a head atlas (HeadAtlas or report.json content), examples traced with ``handle``."""
    from attnscope.views import atlas_view

    return atlas_view(atlas, handle).payload()


def read_atlas(folder: Path) -> tuple[str, dict[str, Any]]:
    """(model name, report) of a heads report folder (``attnscope heads --out DIR``) or its report.json."""
    path = folder / "report.json" if folder.is_dir() else folder
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(
            f"cannot read the head atlas {path} ({err.strerror}); pass a folder made by attnscope heads"
        ) from None
    except ValueError as err:
        raise InputError(f"{path} is not valid JSON ({err}); run attnscope heads again") from None
    info = report.get("model_info") if isinstance(report, dict) else None
    model = info.get("name") if isinstance(info, dict) else None
    if not isinstance(model, str) or report.get("analysis") != "heads":
        raise InputError(f"{path} is not a heads report (attnscope heads --out DIR writes one)")
    return model, report
