"""Writing output files safely: whole or not at all, with the permissions any new file gets.

A file is written to a temporary name in the destination folder and renamed over the destination only
once it is complete, so a full disk, a file-size limit or a crash never leaves a truncated file or
destroys the previous one. :func:`tempfile.mkstemp` creates files readable by the owner only (0600);
the finished file is given the mode the user's umask gives any new file (usually 0644), or keeps the mode
of the file it replaces.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from attnscope.errors import OutputError


def umask_mode(base: int = 0o666) -> int:
    """The mode a newly created file gets under the current umask (``base & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def check_target(path: str | Path, what: str = "output") -> Path:
    """Fail early, with one clear line, if ``path`` cannot be a file to write (a folder, say)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{what} {target} is a folder; give a file name (a new name, or one inside it)")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"cannot write {target}: {parent} is a file, not a folder")
    return target


@contextlib.contextmanager
def atomic_path(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it to ``path``.

    Any ``OSError`` (no permission, disk full, file too large, a folder in the way) becomes one
    :class:`OutputError` naming the file; the destination is then left as it was.
    """
    target = check_target(path, what)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
        tmp = None
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(f"cannot write {what} {target}: {reason}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_atomic(path: str | Path, data: bytes | str, what: str = "output") -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; see :func:`atomic_path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, what) as tmp:
        _write_all(tmp, payload)
    return Path(path)


def _mode_for(target: Path) -> int:
    """The mode to give the new file: the replaced file's, else what the umask gives any new file."""
    try:
        return target.stat().st_mode & 0o7777 if target.is_file() else umask_mode()
    except OSError:
        return umask_mode()


def _write_all(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
