"""``attnscope heads`` / ``attnscope find`` on a real local Ray cluster give local's report, number for number."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnscope.cli import main
from corpus_support import numbers, run_cli

pytest.importorskip("ray", reason="Ray is not installed: pip install 'attnscope[ray]' to test --engine ray")

BATCH = 4  # chunks of 32 texts, shards of 128 on Ray: several shards, merged out of order


def _both(cluster: str, args: list[str], tmp_path: Path, name: str) -> tuple[Path, Path]:
    local, remote = tmp_path / f"{name}-local", tmp_path / f"{name}-ray"
    assert main([*args, "--out", str(local), "--no-progress"]) == 0
    code, out, err = run_cli(*args, "--out", remote, "--engine", "ray", "--address", cluster, "--workers", "2",
                             "--no-progress")  # fmt: skip
    assert code == 0, err
    assert "report written to" in out
    return local, remote


def test_heads_on_ray_equals_local(cluster: str, tiny_model_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    corpus = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    args = ["heads", "--corpus", str(corpus), "--limit", "300", "--batch-size", str(BATCH), "--js-sentences", "200"]
    local, remote = _both(cluster, [*args, "--model", str(tiny_model_dir), "--device", "cpu"], tmp_path, "heads")
    report = numbers(local / "report.json")
    assert report["sentences"] == 300
    assert report["similarity"] is not None  # the JS distances crossed shards too
    assert numbers(remote / "report.json") == report  # every number, timing aside
    for name in ("report.md", "figures/layers.png", "figures/roles.png", "figures/map.png", "index.html"):
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name


def test_find_on_ray_equals_local(cluster: str, tiny_model_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    corpus = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    model = ["--model", str(tiny_model_dir), "--device", "cpu", "--batch-size", str(BATCH), "--limit", "300"]
    local, remote = _both(cluster, ["find", "--corpus", str(corpus), "--pattern", "previous", *model], tmp_path, "p")
    assert numbers(remote / "report.json") == numbers(local / "report.json")
    local, remote = _both(cluster, ["find", "--corpus", str(corpus), "--from", "the", "--to", "of", *model],
                          tmp_path, "w")  # fmt: skip
    report = numbers(local / "report.json")
    assert report["query"]["examples"] > 10
    assert numbers(remote / "report.json") == report
