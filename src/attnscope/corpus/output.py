"""An analysis' output folder, replaced as a whole: built in a temporary folder, swapped in only on success.

A run never leaves a half-written folder, and files of an earlier run (a heatmap of a relation that no
longer qualifies, say) never mix with the new ones. ``--out`` must be new, empty, or an earlier attnscope
output (a folder holding a report.json with ``schema_version`` and ``analysis``); any other folder is
refused before a model is loaded, so a typo cannot delete someone's files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from attnscope.errors import InputError, OutputError
from attnscope.files import umask_mode


def check_out_folder(out: str | Path) -> Path:
    """Fail before any work if ``out`` cannot become (or be replaced by) the output folder; returns it."""
    target = Path(out)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise InputError(f"--out {target} exists and is not a folder; choose a new folder name")
        if any(target.iterdir()) and not _is_report_folder(target):
            raise InputError(
                f"--out {target} is a folder with other files in it (no attnscope report.json); it would be "
                "replaced as a whole, so choose a new or empty folder"
            )
    parent = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise InputError(f"cannot create --out {target}: {parent or target.parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write into {parent}; choose another --out folder")
    return target


def _is_report_folder(folder: Path) -> bool:
    report = folder / "report.json"
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" in data and "analysis" in data


def replace_folder(out: str | Path, files: Mapping[str, str | bytes | Path]) -> Path:
    """Write ``files`` (relative name -> text, bytes, or a finished file to move in) as the whole content of
    folder ``out``, all or nothing."""
    target = check_out_folder(out)
    for name in files:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise InputError(f"output file name {name!r} must be a relative path inside the output folder")
    staging: Path | None = None
    old: Path | None = None  # the earlier output, parked here until the new one is in place
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.move(content, path)  # a rename when it lies on the same file system (a work folder beside out)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        staging.chmod(umask_mode(0o777))  # mkdtemp makes it private; an output folder is an ordinary folder
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "out")
        try:
            os.replace(staging, target)
        except OSError:
            if old is not None:
                os.replace(old / "out", target)  # put the earlier output back (if this fails, old is kept)
                shutil.rmtree(old, ignore_errors=True)
                old = None
            raise
        return target
    except OSError as err:
        kept = ""
        if old is not None and (old / "out").exists():
            kept = f"; the earlier output is in {old / 'out'}"
            old = None  # never delete what could not be put back
        raise OutputError(f"cannot write the output folder {target}: {err.strerror or err}{kept}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
