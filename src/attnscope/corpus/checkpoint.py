"""``--checkpoint DIR``: the merged partial state of the items done so far, saved atomically every N items.

A checkpoint is two files: ``state.bin`` (the state, see :func:`attnscope.corpus.protocol.dumps_state`)
and ``meta.json`` (the job's fingerprint and how many leading items the state covers), each written to a
temporary file and moved into place, ``meta.json`` last, so a job killed at any moment leaves either the
previous checkpoint or the new one. A job started again with the same settings, model and data skips
the items the state covers and continues; with anything else it stops with an error rather than mixing
two jobs' numbers. The files are removed once the job's output is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnscope.corpus.protocol import dumps_state, loads_state
from attnscope.errors import InputError
from attnscope.files import write_atomic

FORMAT = 1
STATE, META = "state.bin", "meta.json"


def fingerprint_of(job: Mapping[str, Any]) -> str:
    """sha256 of a job description (settings, model, data hashes) in canonical JSON."""
    text = json.dumps(job, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Checkpoint:
    """The checkpoint of one job in folder ``folder``; ``job`` describes what must match to resume."""

    def __init__(self, folder: str | Path, job: Mapping[str, Any], every: int) -> None:
        if every < 1:
            raise InputError(f"--checkpoint-every must be at least 1, got {every}")
        self.folder = Path(folder)
        self.job = dict(job)
        self.fingerprint = fingerprint_of(job)
        self.every = every
        self._saved_at = 0
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"--checkpoint {self.folder} exists and is not a folder")

    def load(self) -> tuple[Any, int] | None:
        """(state, items done) of a matching checkpoint, None if there is none; an error if it is another job's."""
        meta_path = self.folder / META
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            done = int(meta["items_done"])
            theirs = str(meta["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(
                f"checkpoint {meta_path} is unreadable ({err}); delete {self.folder} to start over"
            ) from None
        if meta.get("format") != FORMAT or theirs != self.fingerprint:
            diff = _differences(meta.get("job", {}), self.job)
            raise InputError(
                f"checkpoint in {self.folder} belongs to another job ({diff}); run with the same settings, model "
                f"and data, or delete {self.folder} (or pick another --checkpoint folder) to start over"
            )
        try:
            state = loads_state((self.folder / STATE).read_bytes(), self.folder / STATE)
        except OSError as err:
            raise InputError(f"checkpoint state {self.folder / STATE} is unreadable ({err})") from None
        self._saved_at = done
        return state, done

    @property
    def saved_at(self) -> int:
        """Items covered by the last checkpoint saved or loaded (0: none)."""
        return self._saved_at

    def due(self, done: int) -> bool:
        """True when ``done`` is at least ``every`` items past the last save."""
        return done - self._saved_at >= self.every

    def save(self, state: Any, done: int) -> None:
        """Save ``state`` as covering the first ``done`` items (state first, then meta: both atomic)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / STATE, dumps_state(state), "checkpoint")
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "items_done": done, "job": self.job}
        write_atomic(self.folder / META, json.dumps(meta, indent=1, default=str) + "\n", "checkpoint")
        self._saved_at = done

    def clear(self) -> None:
        """Remove this job's checkpoint files (the folder too, when nothing else is in it)."""
        for name in (META, STATE):
            (self.folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty or not there: leave it
            self.folder.rmdir()


def _differences(theirs: Any, ours: Mapping[str, Any]) -> str:
    if not isinstance(theirs, dict):
        return "made by another attnscope version"
    keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if not keys:
        return "made by another attnscope version"
    return "differs in " + ", ".join(f"{k}: {theirs.get(k)!r} then, {ours.get(k)!r} now" for k in keys[:4])
