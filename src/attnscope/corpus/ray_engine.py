"""``--engine ray``: a Ray actor per worker loads the model once (a GPU each when the cluster has GPUs).

The driver streams shards to the actors through :class:`ray.util.ActorPool` (at most two shards in
flight per worker, so memory stays bounded), gets each shard's partial state back as bytes, in order,
and merges it. Actors are restarted by Ray when their process dies (``max_restarts``) and the shard they
held is retried (``max_task_retries``); since a shard's state depends only on its items, a retried
shard gives the same numbers. Needs ``pip install attnscope[ray]``, and attnscope installed on every node.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from attnscope.corpus.engines import FAULT_ENV, CorpusWorker, ModelSpec, RunStats, Session, chunk_size
from attnscope.corpus.protocol import Analysis, ModelRef, loads_state
from attnscope.errors import AttnscopeError, InputError

T = TypeVar("T")
IN_FLIGHT_PER_WORKER = 2
CONNECT_TIMEOUT_S = 5.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'attnscope[ray]'") from None
    return ray


class RayEngine:
    """Run shards on Ray actors: ``address`` of a running cluster (None: start one here), ``workers`` actors.

    ``workers`` defaults to the cluster's GPUs when it has any (one per GPU), else its CPUs divided by
    ``threads`` (torch threads per worker). ``shard_chunks`` chunks make one shard.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        threads: int = 1,
        shard_chunks: int = 4,
        max_retries: int = 3,
    ) -> None:
        for name, value in (("--workers", workers), ("threads", threads), ("shard_chunks", shard_chunks)):
            if value is not None and value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if importlib.util.find_spec("ray") is None:
            raise InputError("--engine ray needs Ray: pip install 'attnscope[ray]'")
        self.address = address
        self.workers = workers
        self.threads = threads
        self.shard_chunks = shard_chunks
        self.max_retries = max_retries

    @contextmanager
    def open(self, model: Any) -> Iterator[Session]:
        """Connect to (or start) Ray, start the actors, each loading the model, and yield a session."""
        if not isinstance(model, ModelSpec):
            raise InputError("Ray workers load the model themselves: pass a model name or folder, not a loaded model")
        ray = _ray()
        if self.address:
            _check_reachable(self.address)
        started = not ray.is_initialized()  # already connected (a notebook, tests): use that cluster
        if started:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="warning")
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise InputError(
                    f"cannot connect to the Ray cluster at {self.address or 'a new local one'}: {err}"
                ) from None
        actors: list[Any] = []
        try:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            use_gpu = gpus > 0 and (model.device is None or model.device.startswith("cuda"))
            workers = self.workers or (gpus if use_gpu else max(1, int(resources.get("CPU", 1)) // self.threads))
            spec = replace(model, device="cuda" if use_gpu else (model.device or "cpu"))
            actor_class = ray.remote(
                num_cpus=self.threads,
                num_gpus=1 if use_gpu else 0,
                max_restarts=self.max_retries,
                max_task_retries=self.max_retries,
            )(CorpusWorker)
            fault = os.environ.get(FAULT_ENV)
            actors = [actor_class.remote(spec, self.threads, fault) for _ in range(workers)]
            infos = _get(ray, [a.info.remote() for a in actors])
            session = _RaySession(ray, actors, self.shard_chunks)
            session.model = ModelRef(infos[0][0], infos[0][1])
            session.stats.worker_pids = [pid for _, _, pid in infos]
            yield session
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail in seconds, with one clear line, when nothing listens at a ``host:port`` cluster address.

    (Ray itself keeps retrying for minutes.) ``auto`` and other forms are left to Ray.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise InputError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or err}); start one there with "
            "'ray start --head' or check --address"
        ) from None


def _get(ray: Any, refs: Any) -> Any:
    """ray.get, with an attnscope error raised in a worker re-raised as itself (one clear line)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, AttnscopeError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as err:
        raise InputError(f"a Ray worker could not start or died too often: {err}") from None


class _RaySession:
    model: ModelRef

    def __init__(self, ray: Any, actors: list[Any], shard_chunks: int) -> None:
        self.ray = ray
        self.actors = actors
        self.shard_chunks = shard_chunks
        self.stats = RunStats()

    def shard_size(self, batch_size: int) -> int:
        return chunk_size(batch_size) * self.shard_chunks

    def map_shards(
        self, analysis: Analysis[Any, Any], shards: Iterator[tuple[int, list[Any]]], batch_size: int
    ) -> Iterator[tuple[int, int, Any]]:
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        ref = self.ray.put(analysis)
        pending: deque[tuple[int, int]] = deque()

        def submit() -> bool:
            shard = next(shards, None)
            if shard is None:
                return False
            start, items = shard
            pool.submit(lambda actor, v: actor.process.remote(ref, v[0], v[1], batch_size), (start, items))
            pending.append((start, len(items)))
            return True

        while len(pending) < IN_FLIGHT_PER_WORKER * len(self.actors) and submit():
            pass
        while pending:
            try:
                data, dumps_s = pool.get_next()
            except self.ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, AttnscopeError):
                    raise cause from None
                raise
            start, n = pending.popleft()
            t0 = time.perf_counter()
            state = loads_state(data)
            self.stats.loads_s += time.perf_counter() - t0
            self.stats.dumps_s += dumps_s
            self.stats.state_bytes = max(self.stats.state_bytes, len(data))
            self.stats.shards += 1
            submit()
            yield start, n, state
        usage = _get(self.ray, [a.usage.remote() for a in self.actors])
        self.stats.worker_peak_rss_kb = [rss for rss, _ in usage]
        self.stats.worker_cpu_s = [cpu for _, cpu in usage]

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = _get(self.ray, self.actors[0].call.remote(fn, args))
        return result
