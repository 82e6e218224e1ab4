"""The one driver every corpus analysis runs through: same flags, same guarantees, any engine.

:func:`run_analysis` streams items into shards, lets the engine turn each shard into a partial state,
merges them in order, and checkpoints the merged state; memory is bounded by a shard, not the corpus.
The command-line half (:func:`add_corpus_options`, :class:`CorpusJob`) gives every analysis the same
flags and checks ``--out`` (and every input file) before a model is loaded; the output folder is
replaced as a whole only when the run succeeded (:mod:`attnscope.corpus.output`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from attnscope.corpus.checkpoint import Checkpoint
from attnscope.corpus.engines import LocalEngine, ModelSpec, Session
from attnscope.corpus.output import check_out_folder, replace_folder
from attnscope.corpus.protocol import Analysis
from attnscope.errors import InputError

ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ENGINES = ("local", "ray")
CHECKPOINT_EVERY = 2000


def run_analysis(
    analysis: Analysis[ItemT, StateT],
    items: Iterable[ItemT],
    session: Session,
    *,
    batch_size: int = 16,
    checkpoint: Checkpoint | None = None,
    progress: bool | None = None,
    total: int | None = None,
) -> StateT:
    """The merged partial state of ``analysis`` over ``items`` (resumed from ``checkpoint`` when it holds one)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    state: StateT = analysis.new_state(session.model.info)
    done = 0
    if checkpoint is not None:
        loaded = checkpoint.load()
        if loaded is not None:
            state, done = loaded
            sys.stderr.write(f"attnscope: resuming {analysis.name} from {checkpoint.folder}: {done} items done\n")
            if total is not None and done > total:
                raise InputError(
                    f"checkpoint in {checkpoint.folder} covers {done} items, more than the {total} asked for; "
                    "raise --limit or delete the checkpoint"
                )
    bar = _progress_bar(analysis.name, total, done, progress)
    try:
        shards = _shards(items, session.shard_size(batch_size), skip=done)
        for start, n, part in session.map_shards(analysis, shards, batch_size):
            if start != done:
                raise RuntimeError(f"engine returned the shard at {start}, expected {done}")  # engines keep order
            t0 = time.perf_counter()
            state = analysis.merge(state, part)
            session.stats.merge_s += time.perf_counter() - t0
            done += n
            if bar is not None:
                bar.update(n)
            if checkpoint is not None and checkpoint.due(done):
                checkpoint.save(state, done)
        if checkpoint is not None and done and checkpoint.saved_at != done:
            checkpoint.save(state, done)  # the finished state too: a crash while writing reports loses nothing
    finally:
        if bar is not None:
            bar.close()
    return state


def analyze(
    analysis: Analysis[ItemT, StateT],
    items: Iterable[ItemT],
    model: Any = None,
    *,
    engine: Any = None,
    batch_size: int = 16,
    checkpoint: Checkpoint | None = None,
    progress: bool | None = None,
) -> tuple[StateT, Session]:
    """Open ``engine`` (default local) on ``model`` (a ModelSpec, a loaded handle, a name or None for the embedded
    model), run ``analysis`` over ``items`` and return the merged state and the (closed) session's facts.

    The Python face of the driver, e.g. ``analyze(DepsAnalysis(), read_treebank(f), "bert-base-uncased",
    engine=RayEngine(address="HEAD:6379"))``.
    """
    if model is None or isinstance(model, str):
        model = ModelSpec(model)
    with (engine or LocalEngine()).open(model) as session:
        state = run_analysis(analysis, items, session, batch_size=batch_size, checkpoint=checkpoint, progress=progress)
    return state, session


def _shards(items: Iterable[ItemT], size: int, skip: int) -> Iterator[tuple[int, list[ItemT]]]:
    """(start, items) runs of ``size`` items, after skipping the first ``skip`` (checkpointed) items."""
    it = iter(items)
    if skip:
        for _ in islice(it, skip):
            pass
    start = skip
    while True:
        batch = list(islice(it, size))
        if not batch:
            return
        yield start, batch
        start += len(batch)


def _progress_bar(name: str, total: int | None, done: int, progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="item", desc=name, file=sys.stderr)


# -- the command line ----------------------------------------------------------------------------


def add_corpus_options(parser: argparse.ArgumentParser, default_out: str, limit_default: int | None = None) -> None:
    """The flags every corpus analysis shares: data size, batching, output, engine, checkpoint and model."""
    from attnscope.cli import add_model_options

    what = f"default {limit_default}" if limit_default is not None else "default all"
    parser.add_argument("--limit", type=int, default=limit_default, metavar="N", help=f"first N items ({what})")
    parser.add_argument("--batch-size", type=int, default=16, metavar="B", help="texts per forward pass (default 16)")
    parser.add_argument(
        "--out", type=Path, default=Path(default_out), metavar="DIR", help=f"output folder (default {default_out})"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal)")
    run = parser.add_argument_group("engine")
    run.add_argument("--engine", choices=ENGINES, default="local", help="local (default, in process) or ray")
    run.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster address (default: start one here)")
    run.add_argument("--workers", type=int, default=None, metavar="N", help="Ray workers (default: one per GPU/CPU)")
    run.add_argument("--checkpoint", type=Path, default=None, metavar="DIR", help="save progress here and resume")
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=CHECKPOINT_EVERY,
        metavar="N",
        help=f"items between checkpoints (default {CHECKPOINT_EVERY})",
    )
    add_model_options(parser)


def count_items(items: Iterable[Any], what: str) -> int:
    """Read every item once (validating the file before a model loads) and count them; none is an error."""
    n = sum(1 for _ in items)
    if n == 0:
        raise InputError(f"no {what} to analyse")
    return n


@dataclass
class CorpusJob:
    """One command-line run: validated flags, the engine, checkpoints per pass, and the output folder."""

    args: argparse.Namespace
    model: ModelSpec
    engine: Any
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CorpusJob:
        """Check every shared flag and ``--out`` (nothing loaded yet) and pick the engine."""
        for flag, value in (
            ("--limit", args.limit),
            ("--batch-size", args.batch_size),
            ("--workers", args.workers),
            ("--checkpoint-every", args.checkpoint_every),
        ):
            if value is not None and value < 1:
                raise InputError(f"{flag} must be at least 1, got {value}")
        if args.engine != "ray" and (args.address is not None or args.workers is not None):
            raise InputError("--address and --workers go with --engine ray")
        check_out_folder(args.out)
        if args.checkpoint is not None:
            ck, out = args.checkpoint.resolve(), args.out.resolve()
            if ck == out or out in ck.parents:
                raise InputError("--checkpoint must lie outside --out (the output folder is replaced as a whole)")
        model = ModelSpec(args.model, args.device, args.dtype, args.trust_remote_code)
        engine: Any
        if args.engine == "ray":
            from attnscope.corpus.ray_engine import RayEngine

            engine = RayEngine(args.address, args.workers)
        else:
            engine = LocalEngine()
        return cls(args, model, engine)

    @property
    def progress(self) -> bool | None:
        return False if self.args.no_progress else None

    def open(self) -> AbstractContextManager[Session]:
        """The engine, started, with the model loaded (on the workers for Ray)."""
        opened: AbstractContextManager[Session] = self.engine.open(self.model)
        return opened

    def run(
        self,
        session: Session,
        analysis: Analysis[ItemT, StateT],
        read: Callable[[], Iterable[ItemT]],
        data: Mapping[str, str | Path],
        total: int,
        part: str = "",
    ) -> StateT:
        """Run ``analysis`` over ``read()`` on the session, with this job's batch size, progress and checkpoint."""
        checkpoint = None
        if self.args.checkpoint is not None:
            from attnscope.probe.report import file_sha256

            job = {
                "analysis": analysis.name,
                "settings": analysis.fingerprint(),
                "model": self.model.identity(),
                "data": {key: file_sha256(path) for key, path in data.items()},
                "batch_size": self.args.batch_size,
            }
            folder = self.args.checkpoint / part if part else self.args.checkpoint
            checkpoint = Checkpoint(folder, job, self.args.checkpoint_every)
            self.checkpoints.append(checkpoint)
        return run_analysis(
            analysis,
            read(),
            session,
            batch_size=self.args.batch_size,
            checkpoint=checkpoint,
            progress=self.progress,
            total=total,
        )

    def write(self, files: Mapping[str, str | bytes | Path]) -> Path:
        """Replace ``--out`` with ``files``, then drop the checkpoints (the job is done)."""
        out = replace_folder(self.args.out, files)
        for checkpoint in self.checkpoints:
            checkpoint.clear()
        if self.args.checkpoint is not None:
            with contextlib.suppress(OSError):  # other files in it: leave it
                self.args.checkpoint.rmdir()
        return out


def payload_function(session: Session) -> Callable[[str], str] | None:
    """Head-view payloads computed where the model lives, or None when the view bundle is not built."""
    from attnscope.probe.page import example_payload, view_bundle

    if view_bundle() is None:
        return None
    return lambda text: session.call(example_payload, text)


def settings_of(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The named flags' values (report.json ``settings``)."""
    return {name: getattr(args, name) for name in names}
