"""The corpus-analysis protocol: stream items, update a partial state from traced batches, merge, finalize.

An analysis is a picklable object holding its settings (never a model). Engines feed it items in fixed
chunks, so every item is traced in the same padded batch whatever the engine or sharding; each engine
keeps one partial state per shard and the driver merges them. ``merge`` must be associative and
commutative and states must hold only plain Python and numpy values (no torch objects), so a state can
cross process boundaries and be saved in a checkpoint. Float sums that could depend on the merge order
are kept as exact integers (see :func:`fixed_point`).
"""

from __future__ import annotations

import io
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle
    from attnscope.traces import ModelInfo, Trace

ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")

FIXED_POINT_SCALE = float(1 << 32)
FileContent = str | bytes | Path
"""An output file's content: text, bytes, or a finished file (moved into the output folder, for large outputs)."""


@dataclass(frozen=True)
class TraceInput:
    """What to trace for one item: the text and, optionally, sentence B."""

    text: str
    text_pair: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """The model's name and facts: what a report needs, without the model itself (which may live on a worker)."""

    name: str
    info: ModelInfo


@dataclass(frozen=True)
class Finalize:
    """What ``finalize`` gets besides the state: the model's facts, data files, settings, and a way to run the model.

    ``data`` names the input files (role -> path) for the report; ``payload(text)`` returns a head-view
    payload of the model on ``text``, computed wherever the model lives (in process, or on a Ray
    worker); ``None`` when views are off or not built.
    """

    model: ModelRef
    data: Mapping[str, Path]
    settings: Mapping[str, Any]
    payload: Callable[[str], str] | None = None


class Analysis(ABC, Generic[ItemT, StateT]):
    """One analysis over a corpus: how to trace an item, a partial state, how to update, merge and finalize it.

    To add one: subclass, give it a ``name``, keep its settings as plain attributes (they go into
    :meth:`fingerprint`), and implement the methods below. The driver does the rest (flags, batching,
    engines, checkpoints, atomic output).
    """

    name: str = "analysis"

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Every setting that changes the numbers (JSON-able); a checkpoint made with others is refused."""

    @abstractmethod
    def inputs(self, item: ItemT) -> TraceInput:
        """What to trace for ``item``."""

    @abstractmethod
    def new_state(self, info: ModelInfo) -> StateT:
        """An empty partial state for a model with these facts."""

    def trace(self, handle: ModelHandle, items: Sequence[ItemT], batch_size: int) -> Sequence[Any]:
        """What :meth:`update` gets for a chunk, computed where the model lives: by default the items' traces
        (cut when too long); an analysis that needs other outputs of the forward pass overrides it."""
        from attnscope.corpus.engines import trace_items

        return trace_items(handle, self, items, batch_size)

    @abstractmethod
    def update(self, state: StateT, start: int, items: Sequence[ItemT], traces: Sequence[Trace]) -> None:
        """Add a batch to ``state`` in place; ``items[i]`` is item number ``start + i`` of the corpus."""

    @abstractmethod
    def merge(self, a: StateT, b: StateT) -> StateT:
        """The state of both parts (associative and commutative; may reuse ``a`` or ``b``)."""

    def finalize(self, state: StateT, context: Finalize) -> Mapping[str, FileContent]:
        """The report files (relative name -> content) of a finished state; analyses without files return {}."""
        return {}


def payload_maker(model: Any, payload: Callable[[str], str] | None) -> Callable[[str], str] | None:
    """``payload`` if given; else head-view payloads from ``model`` when it is a loaded model; else None."""
    if payload is not None:
        return payload
    if isinstance(model, ModelRef):
        return None
    from attnscope.probe.page import example_payload

    return lambda text: example_payload(model, text)


def stack_of(info: ModelInfo) -> str:
    """The stack an analysis of the input text reads: the encoder, or a decoder-only model's decoder."""
    return "decoder" if info.is_causal and not info.is_encoder_decoder else "encoder"


def fixed_point(value: float | NDArray[np.floating]) -> NDArray[np.int64]:
    """A float sum as an exact integer count of 2**-32 units: integer sums do not depend on merge order."""
    return np.asarray(np.rint(np.asarray(value, dtype=np.float64) * FIXED_POINT_SCALE), dtype=np.int64)


def from_fixed_point(value: NDArray[np.int64]) -> NDArray[np.float64]:
    """Back from :func:`fixed_point` units to floats."""
    return np.asarray(value, dtype=np.float64) / FIXED_POINT_SCALE


# -- states as bytes ------------------------------------------------------------------------------

_ALLOWED_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str", "bytes", "complex", "slice"}
)


class _StateUnpickler(pickle.Unpickler):
    """Loads only numpy values, plain containers and attnscope's own classes: a state file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        top = module.split(".", 1)[0]
        if (module == "builtins" and name in _ALLOWED_BUILTINS) or top in ("numpy", "attnscope"):
            return super().find_class(module, name)
        if module in ("collections", "copyreg") and name in ("OrderedDict", "_reconstructor"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a partial state may not contain {module}.{name}")


def dumps_state(state: Any) -> bytes:
    """A partial state as bytes (pickle protocol 5); refuses torch objects, which do not belong in a state."""
    buf = io.BytesIO()
    _StatePickler(buf, protocol=5).dump(state)
    return buf.getvalue()


class _StatePickler(pickle.Pickler):
    """Pickles a state, refusing torch objects (a state must load where torch is not even imported)."""

    def persistent_id(self, obj: Any) -> None:
        if type(obj).__module__.split(".", 1)[0] == "torch":
            raise InputError(f"a partial state holds a torch object ({type(obj).__name__}); keep states in numpy")
        return


def loads_state(data: bytes, where: str | Path = "partial state") -> Any:
    """The state :func:`dumps_state` wrote; anything else is an error naming ``where``."""
    try:
        return _StateUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as err:
        raise InputError(f"{where} is not a partial state attnscope can read ({err})") from None
