"""The Ray engine on a real local Ray cluster (127.0.0.1, 2 CPUs): same numbers as local, survives a dying worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnscope.cli import main
from attnscope.corpus.driver import run_analysis
from attnscope.corpus.engines import FAULT_ENV, LocalEngine, ModelSpec, chunk_size
from attnscope.corpus.protocol import ModelRef
from attnscope.probe.coref_analysis import CorefAnalysis
from attnscope.probe.data import read_coref, read_treebank
from attnscope.probe.deps_analysis import DepsAnalysis, counts_of
from attnscope.probe.deps_report import deps_report
from attnscope.probe.train_analysis import FeatureAnalysis
from corpus_support import numbers, run_cli

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'attnscope[ray]' to test --engine ray")
from attnscope.corpus.ray_engine import RayEngine  # noqa: E402

BATCH = 4  # chunks of 32 items, shards of 128: several shards even on small inputs


def _deps_json(model: ModelRef, state: Any, treebank: Path) -> dict[str, Any]:
    return deps_report(model, counts_of(state), treebank, {})


def _run_both(analysis: Any, items: list[Any], spec: ModelSpec, engine: Any) -> tuple[Any, Any, ModelRef, Any]:
    with engine.open(spec) as session:
        remote = run_analysis(analysis, items, session, batch_size=BATCH)
        stats = session.stats
    with LocalEngine(threads=1).open(spec) as session:
        local = run_analysis(analysis, items, session, batch_size=BATCH)
        model = session.model
    return remote, local, model, stats


def test_ray_equals_local_for_every_analysis(cluster: str, tiny_model_dir: Path, shared_data: Path) -> None:
    spec = ModelSpec(str(tiny_model_dir), device="cpu")
    treebank = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    sentences = list(read_treebank(treebank, limit=300))
    remote, local, model, stats = _run_both(DepsAnalysis(), sentences, spec, RayEngine(workers=2))
    assert stats.shards == 3
    assert len(set(stats.worker_pids)) == 2  # two actors, each its own process
    assert _deps_json(model, remote, treebank) == _deps_json(model, local, treebank)
    assert 0 < stats.state_bytes < 1_000_000

    items = list(read_coref(shared_data / "coref" / "wsc273.jsonl", limit=80))
    analysis = CorefAnalysis()
    remote, local, _, _ = _run_both(analysis, items, spec, RayEngine(workers=2, shard_chunks=1))
    a, b = analysis.result(remote), analysis.result(local)
    assert np.array_equal(a.correct, b.correct)
    assert a.skipped == b.skipped

    remote, local, _, _ = _run_both(FeatureAnalysis(), sentences[:100], spec, RayEngine(workers=2, shard_chunks=1))
    assert remote.skipped == local.skipped
    for x, y in zip(remote.features(), local.features(), strict=True):
        assert np.array_equal(x.attention, y.attention)
        assert np.array_equal(x.heads, y.heads)


def test_a_worker_killed_mid_job_is_retried(
    cluster: str, tiny_model_dir: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "worker-died"
    second_shard = chunk_size(BATCH) * 4
    monkeypatch.setenv(FAULT_ENV, f"{second_shard}:{marker}")  # the worker given shard 2 exits at once, once
    treebank = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    sentences = list(read_treebank(treebank, limit=300))
    spec = ModelSpec(str(tiny_model_dir), device="cpu")
    remote, local, model, _ = _run_both(DepsAnalysis(), sentences, spec, RayEngine(workers=2))
    assert marker.exists(), "the test hook did not kill a worker"
    assert _deps_json(model, remote, treebank) == _deps_json(model, local, treebank)


def test_cli_runs_on_a_cluster_by_address(
    cluster: str, tiny_model_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    args = ["probe", "deps", "--treebank", str(shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"), "--limit", "200"]
    args += ["--batch-size", str(BATCH), "--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    code, out, err = run_cli(
        *args, "--out", tmp_path / "ray", "--engine", "ray", "--address", cluster, "--workers", "2"
    )
    assert code == 0, err
    assert "report written to" in out
    assert numbers(tmp_path / "ray" / "report.json") == numbers(tmp_path / "local" / "report.json")
    # the page's head views of example sentences were computed by a worker: the same page
    assert (tmp_path / "ray" / "index.html").read_bytes() == (tmp_path / "local" / "index.html").read_bytes()


def test_a_local_checkpoint_resumes_on_ray(
    cluster: str, tiny_model_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    from attnscope.corpus.checkpoint import Checkpoint

    treebank = shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"
    sentences = list(read_treebank(treebank, limit=300))
    spec = ModelSpec(str(tiny_model_dir), device="cpu")
    job = {"analysis": "probe deps", "model": spec.identity()}
    with LocalEngine(threads=1).open(spec) as session:  # the first 128 sentences, checkpointed
        run_analysis(
            DepsAnalysis(), sentences[:128], session, batch_size=BATCH, checkpoint=Checkpoint(tmp_path, job, 32)
        )
        whole = run_analysis(DepsAnalysis(), sentences, session, batch_size=BATCH)
        model = session.model
    with RayEngine(workers=2).open(spec) as session:  # the rest on Ray, from the checkpoint
        resumed = run_analysis(
            DepsAnalysis(), sentences, session, batch_size=BATCH, checkpoint=Checkpoint(tmp_path, job, 32)
        )
        assert session.stats.shards == 2  # items 128..299: shards at 128 and 256
    assert _deps_json(model, resumed, treebank) == _deps_json(model, whole, treebank)


def test_an_address_where_no_cluster_listens_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "t.conllu"
    tree.write_text("1\tHi\thi\tX\tX\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    args = ["probe", "deps", "--treebank", str(tree), "--out", str(tmp_path / "out")]
    assert main([*args, "--engine", "ray", "--address", "127.0.0.1:1"]) == 2
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
