"""Helpers shared by the corpus-driver tests: the CLI in a child process, report numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``attnscope ARGS`` in a new process (this checkout's sources first on the path)."""
    full_env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "attnscope.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def run_cli(*args: str | Path, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``attnscope ARGS`` to the end: (exit code, stdout, stderr)."""
    proc = cli(*args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def numbers(report_file: Path) -> dict[str, Any]:
    """report.json without fields that name where or when it ran (none yet; kept for timing fields to come)."""
    report: dict[str, Any] = json.loads(report_file.read_text(encoding="utf-8"))
    report.pop("timing", None)
    return report
