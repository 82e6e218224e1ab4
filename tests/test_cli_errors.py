"""Every command ends in one clear line, never a raw traceback: hostile text, bad outputs, broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiny_models
from attnscope import Trace
from attnscope.cli import describe_error, main
from attnscope.errors import ModelLoadError, TraceFileError
from attnscope.loading import load
from test_probe_train import synthetic


def _trace_file(path: Path) -> Path:
    att = np.full((1, 1, 2, 3, 3), 1 / 3, dtype=np.float32)
    return Trace.from_attentions(list(att), ["[CLS]", "hi", "[SEP]"]).save(path)


def test_undecodable_text_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["trace", "\udcff\udcfe"])  # what Python makes of the bytes $'\xff\xfe' on the command line
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument TEXT: the text holds bytes that are not valid" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_bad_output_paths_fail_before_the_model_loads(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("attnscope.loading.load", lambda *a, **k: pytest.fail("the model should not load"))
    if kind == "folder":
        out = tmp_path
    else:
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "t.safetensors"
    for command in (["trace", "hi", "-o", str(out)], ["view", "hi", "-o", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("attnscope: error: "), err


def test_a_disk_that_refuses_the_write_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("attnscope.files._write_all", full)
    out = tmp_path / "t.safetensors"
    assert main(["trace", "The cat sat.", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"attnscope: error: cannot write trace file {out}: No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_unexpected_errors_ask_for_a_report_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("attnscope.loading.load", bug)
    assert main(["trace", "hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("attnscope: internal error: ZeroDivisionError: division by zero. This is a bug")
    assert "Traceback" not in err
    assert "--debug" in err
    assert main(["--debug", "trace", "hi"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("ATTNSCOPE_DEBUG", "1")
    assert main(["trace", "hi"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_system_errors_are_described_in_one_line() -> None:
    assert describe_error(PermissionError(13, "Permission denied", "/x")) == ("error: Permission denied: /x", 2)
    assert describe_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))[1] == 2
    assert describe_error(ModelLoadError("no model"))[0] == "error: no model"


def test_an_infinite_learning_rate_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from attnscope.errors import InputError
    from attnscope.probe.train import fit_arc_probe

    for lr in ("inf", "nan", "-1", "1e38"):
        assert main(["probe", "train", "--treebank", "x", "--eval", "y", "--lr", lr]) == 2
        assert "--lr must be a positive finite number" in capsys.readouterr().err
    for value in (float("inf"), 1e38):  # 1e38 used to overflow inside Adam (RuntimeError)
        with pytest.raises(InputError, match="positive finite"):
            fit_arc_probe(synthetic(4, 0, signal=True), lr=value)


def test_broken_remote_code_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    auto_map = {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "x-broken", "auto_map": auto_map}))
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "configuration_x.py").write_text('raise RuntimeError("the author broke this")\n')
    with pytest.raises(ModelLoadError, match=r"own modelling code .* failed with RuntimeError: the author broke this"):
        load(folder, device="cpu", trust_remote_code=True)


def test_broken_model_folders_say_what_is_wrong(tmp_path: Path, wordpiece: Any) -> None:
    folder = tmp_path / "m"
    tiny_models.build("bert").save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    load(folder, device="cpu")  # the folder as saved loads
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config[: len(config) // 2])
    with pytest.raises(ModelLoadError, match=r"config\.json is not a readable JSON config") as info:
        load(folder, device="cpu")
    assert "not a local folder" not in str(info.value)
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"has config\.json but no weights: expected one of model\.safetensors"):
        load(folder, device="cpu")


def test_deeply_nested_trace_header_is_a_trace_file_error(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "deep.safetensors"
    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"attnscope": "[" * 200_000 + "]" * 200_000})
    with pytest.raises(TraceFileError, match="nested too deeply"):
        Trace.load(path)


def test_trace_file_without_attention_is_a_trace_file_error(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = _trace_file(tmp_path / "t.safetensors")
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("attention.")}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(TraceFileError, match="holds no attention arrays"):
        Trace.load(path)


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "attnscope.cli", "trace", "hi", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("attnscope: error: trace file")
    assert "Traceback" not in run.stderr
