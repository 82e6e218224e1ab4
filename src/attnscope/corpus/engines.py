"""Where an analysis runs: :class:`LocalEngine` (in process) or :class:`RayEngine` (Ray actors, one model each).

Both engines cut the item stream the same way: into *chunks* of ``batch_size x CHUNK_BATCHES`` items,
each traced as one unit (:func:`attnscope.tracing.trace_many` sorts a chunk by length into padded
batches), so an item meets the same batch neighbours, hence the same numbers, on any engine. A *shard*
is a run of whole chunks; an engine turns each shard into a partial state and hands them back in order.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from attnscope.corpus.protocol import Analysis, ModelRef, dumps_state
from attnscope.errors import InputError

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle
    from attnscope.traces import Trace

CHUNK_BATCHES = 8  # a chunk is trace_many's sorting window: batch_size x 8 items
FAULT_ENV = "ATTNSCOPE_TEST_WORKER_EXIT"  # tests: "START:MARKER": a worker exits once on the shard at START
T = TypeVar("T")


def chunk_size(batch_size: int) -> int:
    """Items per chunk for a batch size."""
    return batch_size * CHUNK_BATCHES


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model (name or folder, device, dtype): what a worker gets instead of the model itself."""

    name: str | None = None
    device: str | None = None
    dtype: str | None = None
    trust_remote_code: bool = False

    def load(self) -> ModelHandle:
        """Load the model this spec names."""
        from attnscope.loading import load

        return load(self.name, device=self.device, dtype=self.dtype, trust_remote_code=self.trust_remote_code)

    def identity(self) -> dict[str, Any]:
        """What names the weights (for checkpoints): a local folder by its absolute path, else the name."""
        name = self.name
        if name is not None and Path(name).exists():
            name = str(Path(name).resolve())
        return {"model": name or "embedded default", "dtype": self.dtype or "float32"}


@dataclass
class RunStats:
    """Timings of one run, for benchmarks: merge, (de)serialisation and the largest partial state."""

    shards: int = 0
    merge_s: float = 0.0
    dumps_s: float = 0.0
    loads_s: float = 0.0
    state_bytes: int = 0
    worker_pids: list[int] = field(default_factory=list)
    worker_peak_rss_kb: list[int] = field(default_factory=list)
    worker_cpu_s: list[float] = field(default_factory=list)


class Session(Protocol):
    """An engine with the model loaded: turns shards into partial states, and runs the model for reports."""

    model: ModelRef
    stats: RunStats

    def shard_size(self, batch_size: int) -> int:
        """Items per shard (a multiple of the chunk size)."""

    def map_shards(
        self, analysis: Analysis[Any, Any], shards: Iterator[tuple[int, list[Any]]], batch_size: int
    ) -> Iterator[tuple[int, int, Any]]:
        """(start, number of items, partial state) of each shard, in the order given."""

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(handle, *args)`` where the model lives."""


def peak_rss_kb() -> int:
    """Peak resident memory of this process in KiB (Linux ``ru_maxrss``)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user + times.system


def trace_items(
    handle: ModelHandle, analysis: Analysis[Any, Any], items: Sequence[Any], batch_size: int
) -> list[Trace]:
    """Trace one chunk of items (truncating what is too long; analyses see ``trace.truncated``)."""
    from attnscope.tracing import trace_many

    inputs = [analysis.inputs(item) for item in items]
    texts = [i.text for i in inputs]
    pairs = [i.text_pair for i in inputs]
    targets = texts if handle.info.is_encoder_decoder else None  # encoder-decoders: the decoder re-reads the text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # truncation is the analysis' business (skipped, counted)
        return list(
            trace_many(
                handle, texts, text_pairs=pairs, targets=targets, batch_size=batch_size, truncation=True, progress=False
            )
        )


def process_shard(
    handle: ModelHandle, analysis: Analysis[Any, Any], start: int, items: Sequence[Any], batch_size: int
) -> Any:
    """A fresh partial state of one shard, traced chunk by chunk."""
    state = analysis.new_state(handle.info)
    size = chunk_size(batch_size)
    for offset in range(0, len(items), size):
        chunk = items[offset : offset + size]
        analysis.update(state, start + offset, chunk, analysis.trace(handle, chunk, batch_size))
    return state


class LocalEngine:
    """In process: one model, one chunk at a time (``threads``: torch CPU threads while it runs)."""

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        self.threads = threads

    @contextmanager
    def open(self, model: ModelSpec | ModelHandle) -> Iterator[Session]:
        """Load the model (unless a handle is given) and yield a session on it."""
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            handle = model.load() if isinstance(model, ModelSpec) else model
            yield _LocalSession(handle)
        finally:
            torch.set_num_threads(before)


class _LocalSession:
    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle
        self.model = ModelRef(handle.name, handle.info)
        self.stats = RunStats(worker_pids=[os.getpid()])

    def shard_size(self, batch_size: int) -> int:
        return chunk_size(batch_size)

    def map_shards(
        self, analysis: Analysis[Any, Any], shards: Iterator[tuple[int, list[Any]]], batch_size: int
    ) -> Iterator[tuple[int, int, Any]]:
        for start, items in shards:
            self.stats.shards += 1
            yield start, len(items), process_shard(self.handle, analysis, start, items, batch_size)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.handle, *args)


class CorpusWorker:
    """A Ray actor's body: loads the model once, then turns shards into serialised partial states."""

    def __init__(self, spec: ModelSpec, threads: int, fault: str | None = None) -> None:
        import torch

        torch.set_num_threads(threads)
        self.handle = spec.load()
        self.fault = fault

    def info(self) -> tuple[str, Any, int]:
        """The model's name and facts, and this worker's process id."""
        return self.handle.name, self.handle.info, os.getpid()

    def usage(self) -> tuple[int, float]:
        """This worker process's peak resident memory (KiB) and CPU time (user + system seconds)."""
        return peak_rss_kb(), cpu_seconds()

    def process(
        self, analysis: Analysis[Any, Any], start: int, items: list[Any], batch_size: int
    ) -> tuple[bytes, float]:
        """(state bytes, seconds spent serialising) of one shard."""
        self._maybe_exit(start)
        state = process_shard(self.handle, analysis, start, items, batch_size)
        t0 = time.perf_counter()
        data = dumps_state(state)
        return data, time.perf_counter() - t0

    def call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """``fn(handle, *args)`` on this worker's model."""
        return fn(self.handle, *args)

    def _maybe_exit(self, start: int) -> None:
        """Test hook (``FAULT_ENV`` set in the driver): die once, abruptly, on the shard at a given start."""
        if not self.fault:
            return
        at, marker = self.fault.split(":", 1)
        if int(at) == start and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")
            os._exit(1)
