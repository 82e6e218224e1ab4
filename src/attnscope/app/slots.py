"""One forward pass per model at a time, behind a bounded queue: what keeps a served model from overload.

A :class:`ModelSlot` holds a loaded model, an asyncio lock and a count of the requests running or waiting
for it. Work runs in a worker thread (so the event loop keeps serving other requests and health checks);
a request that finds the queue full gets :class:`BusyError` at once (HTTP 503 with Retry-After), never a wait
without end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread

T = TypeVar("T")


class BusyError(Exception):
    """The model's queue is full; ``retry_after`` is a whole number of seconds worth waiting."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"model {name} is busy ({retry_after} s until a place is likely free); try again")
        self.retry_after = retry_after


@dataclass(eq=False)
class ModelSlot:
    """A served model: ``handle`` (a ModelHandle), and at most ``1 + queue_size`` requests at once.

    One runs; up to ``queue_size`` wait their turn in arrival order (asyncio's lock is fair).
    """

    name: str
    handle: Any
    queue_size: int = 8
    pending: int = 0
    seconds_per_run: float = 0.5  # running mean of recent runs: the basis of Retry-After
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread once no other run of this model is in progress.

        Raises :class:`BusyError` when ``queue_size`` requests already wait. A caller cancelled while waiting
        leaves the queue; one cancelled while running keeps the lock until its thread finishes, so two
        forward passes of one model never overlap.
        """
        if self.pending > self.queue_size:
            raise BusyError(self.name, self.retry_after())
        if self._lock is None:
            self._lock = asyncio.Lock()
        self.pending += 1
        try:
            async with self._lock:
                start = time.perf_counter()
                result = await anyio.to_thread.run_sync(lambda: fn(*args))
                self.seconds_per_run = 0.8 * self.seconds_per_run + 0.2 * (time.perf_counter() - start)
                return result
        finally:
            self.pending -= 1

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved on by one place (at least 1)."""
        return max(1, math.ceil(self.pending * self.seconds_per_run))
