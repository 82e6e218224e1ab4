"""The command line: summaries, files, one-line errors, complete help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import attnscope
from attnscope.cli import build_parser, main


def test_trace_writes_file_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pair.safetensors"
    code = main(["trace", "The cat is very sad.", "Because it could not find food to eat.", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 layers x 12 heads" in printed
    assert f"trace written to {out.resolve()}" in printed
    loaded = attnscope.Trace.load(out)
    assert loaded.attention["encoder"].shape == (6, 12, 18, 18)
    np.testing.assert_allclose(loaded.attention["encoder"].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "  "], "text is empty"),
        (["trace", "hello", "--model", "no-such-org/no-such-model"], "could not load model"),
        (["trace", "hello", "--model", "./not/here"], "no model folder"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnscope: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_help_is_complete() -> None:
    parser = build_parser()
    top = parser.format_help()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in subcommands.items():
        assert name in top
        text = sub.format_help()
        for action in sub._actions:
            if action.help and action.option_strings:
                assert action.option_strings[-1] in text
            assert action.help, f"{name}: option {action.dest} has no help text"


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "attnscope"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "trace" in result.stdout
