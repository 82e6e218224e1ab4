"""``probe deps`` on the local engine against the Ray engine with 1 and 2 workers, in one run (issue 7).

On the embedded MiniLM (CPU) over EWT train (12,543 sentences; ``--limit N`` for the first N), batch
size 16, three contenders, each in a fresh child process, one after the other:
  - local: the in-process engine, torch with 2 threads;
  - ray-1 / ray-2: a job connecting to a 2-CPU Ray cluster on 127.0.0.1 (started once by the parent, its
    start time reported apart, as a cluster outlives the jobs run on it), and 1 or 2
    actor workers with 1 torch thread each (each loads the model once; shards of 512 sentences, merged by
    the driver).
For each: wall time of the run (engine started and model loaded: "start"; the analysis: "run"), CPU time
(driver and each worker: user + system of every thread; Ray's own daemons not counted), peak RSS of the
driver and of each worker, the time spent merging partial states and (de)serialising them, the bytes of
the largest partial state and of the final merged state; and whether report.json is the same number for
number as the local engine's. Then, on the local engine, the cost per sentence split into forward pass
and analysis, and the driver's reading rate, from which it projects 1 M sentences on N GPU workers.
Targets: ray-2 wall <= 1.15 x local; merge + serialisation <= 2 % of the total; a partial state <= 1 MB.

Run: .venv/bin/python benchmarks/engines.py [--limit N] [--batch-size B] [--no-write]
Ray's servers listen on every interface; run it in a network namespace whose only interface is loopback:
  unshare --net sh -c 'ip link set lo up && exec .venv/bin/python benchmarks/engines.py'
Results: benchmarks/results/engines.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-uds-train.conllu"
RESULTS = ROOT / "benchmarks" / "results" / "engines.md"
CONTENDERS = ("local", "ray-1", "ray-2")


def child(mode: str, treebank: Path, limit: int | None, batch_size: int) -> dict[str, Any]:
    """Run one contender in this process and return its measurements."""
    from attnscope.corpus.driver import run_analysis
    from attnscope.corpus.engines import LocalEngine, ModelSpec, cpu_seconds, peak_rss_kb
    from attnscope.corpus.protocol import dumps_state
    from attnscope.probe.data import read_treebank
    from attnscope.probe.deps_analysis import DepsAnalysis, counts_of
    from attnscope.probe.deps_report import deps_report

    engine: Any
    t0 = time.perf_counter()
    if mode == "local":
        engine = LocalEngine(threads=2)
    else:
        import ray

        from attnscope.corpus.ray_engine import RayEngine

        # The job connects to a running cluster, as a job on a real cluster does (README "Scaling out"); the
        # parent started it with `ray start --head` and reports that one-off start separately.
        ray.init(address=os.environ["ATTNSCOPE_BENCH_RAY"], include_dashboard=False, log_to_driver=False)
        engine = RayEngine(workers=int(mode.split("-")[1]), threads=1)
    analysis = DepsAnalysis()
    spec = ModelSpec(None, device="cpu")
    with engine.open(spec) as session:
        started = time.perf_counter()
        cpu0 = cpu_seconds()
        state = run_analysis(analysis, read_treebank(treebank, limit=limit), session, batch_size=batch_size)
        ran = time.perf_counter()
        t = time.perf_counter()
        final = dumps_state(state)
        final_dumps = time.perf_counter() - t
        stats = session.stats
        report = deps_report(session.model, counts_of(state), treebank, {})
        breakdown = _breakdown(session, analysis, treebank, batch_size, limit) if mode == "local" else None
    sentences = counts_of(state).sentences
    return {
        "mode": mode,
        "sentences": sentences,
        "start_s": started - t0,
        "run_s": ran - started,
        "driver_cpu_s": cpu_seconds() - cpu0 if mode != "local" else None,
        "local_cpu_s": cpu_seconds() - cpu0 if mode == "local" else None,
        "worker_cpu_s": stats.worker_cpu_s,
        "driver_rss_mb": peak_rss_kb() / 1024,
        "worker_rss_mb": [kb / 1024 for kb in stats.worker_peak_rss_kb],
        "merge_s": stats.merge_s,
        "serial_s": stats.dumps_s + stats.loads_s,
        "shards": stats.shards,
        "shard_state_bytes": stats.state_bytes or None,
        "final_state_bytes": len(final),
        "final_dumps_s": final_dumps,
        "report_sha": hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16],
        "breakdown": breakdown,
    }


def _breakdown(session: Any, analysis: Any, treebank: Path, batch_size: int, limit: int | None) -> dict[str, float]:
    """Seconds per sentence for the forward pass (trace) and the analysis, on the first 512 sentences at most."""
    from attnscope.corpus.engines import chunk_size, trace_items
    from attnscope.probe.data import read_treebank

    items = list(read_treebank(treebank, limit=min(512, limit or 512)))
    state = analysis.new_state(session.model.info)
    traced = counted = 0.0
    size = chunk_size(batch_size)
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        t0 = time.perf_counter()
        traces = trace_items(session.handle, analysis, chunk, batch_size)
        t1 = time.perf_counter()
        analysis.update(state, start, chunk, traces)
        t2 = time.perf_counter()
        traced += t1 - t0
        counted += t2 - t1
    return {"trace_s_per_sentence": traced / len(items), "analysis_s_per_sentence": counted / len(items)}


def run_child(mode: str, args: argparse.Namespace, address: str | None = None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--treebank",
        str(args.treebank),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if address:
        env["ATTNSCOPE_BENCH_RAY"] = address
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - t0
    return result


@contextmanager
def ray_cluster() -> Iterator[tuple[str, float]]:
    """A 2-CPU Ray cluster started here (kept up while the Ray jobs run), its address and start seconds."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address), time.perf_counter() - t0
    finally:
        ray.shutdown()


def reading_rate(treebank: Path, limit: int | None) -> float:
    """Sentences per second the driver reads and parses (one core)."""
    from attnscope.probe.data import read_treebank

    t0 = time.perf_counter()
    n = sum(1 for _ in read_treebank(treebank, limit=limit))
    return n / (time.perf_counter() - t0)


def table(results: list[dict[str, Any]]) -> str:
    local = results[0]
    head = (
        "| engine | sentences | start s | run s | total s | x local | CPU s (driver + workers) "
        "| peak RSS MB (driver; workers) | merge s | serialise s | merge+ser % | shard state KB "
        "| final state KB | report = local |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in results:
        total = r["start_s"] + r["run_s"]
        ltotal = local["start_s"] + local["run_s"]
        cpu = r["local_cpu_s"] if r["mode"] == "local" else r["driver_cpu_s"] + sum(r["worker_cpu_s"])
        cpu_text = (
            f"{cpu:.1f}"
            if r["mode"] == "local"
            else f"{cpu:.1f} ({r['driver_cpu_s']:.1f} + " + " + ".join(f"{c:.1f}" for c in r["worker_cpu_s"]) + ")"
        )
        rss = f"{r['driver_rss_mb']:.0f}" + (
            "; " + ", ".join(f"{m:.0f}" for m in r["worker_rss_mb"]) if r["worker_rss_mb"] else ""
        )
        overhead = r["merge_s"] + r["serial_s"] + r["final_dumps_s"]
        shard = f"{r['shard_state_bytes'] / 1024:.0f}" if r["shard_state_bytes"] else "-"
        same = "yes" if r["report_sha"] == local["report_sha"] else "NO"
        cells = [
            r["mode"],
            str(r["sentences"]),
            f"{r['start_s']:.1f}",
            f"{r['run_s']:.1f}",
            f"{total:.1f}",
            f"{total / ltotal:.2f}",
            cpu_text,
            rss,
            f"{r['merge_s']:.4f}",
            f"{r['serial_s'] + r['final_dumps_s']:.4f}",
            f"{100 * overhead / total:.3f}",
            shard,
            f"{r['final_state_bytes'] / 1024:.0f}",
            same,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def projection(results: list[dict[str, Any]], rate: float) -> str:
    local = results[0]
    b = local["breakdown"]
    per = (local["run_s"]) / local["sentences"]
    trace, post = b["trace_s_per_sentence"], b["analysis_s_per_sentence"]
    shards = 1_000_000 / 512
    merge_per_shard = max((r["merge_s"] + r["serial_s"]) / max(r["shards"], 1) for r in results)
    lines = [
        f"Measured on the local engine (2 threads): {1000 * per:.2f} ms per sentence end to end; on its first "
        f"{min(512, local['sentences'])} sentences {1000 * trace:.2f} ms tracing (tokenize, forward, attention to "
        f"numpy) and {1000 * post:.2f} ms of analysis (word attention, counting) per sentence. The driver reads "
        f"and parses {rate:,.0f} sentences/s "
        f"on one core, and merging plus (de)serialising costs {1000 * merge_per_shard:.2f} ms per shard of 512.",
        "",
        f"1 M sentences on the CPU of this machine (local engine): {1e6 * per / 3600:.1f} h. On N GPU workers "
        "(assumed, not measured here: the forward pass of a small encoder on a current GPU costs well under a "
        "millisecond a sentence in batches of 16) a worker's rate is set by the CPU work that stays: "
        f"tokenizing, copying attention to host memory and the analysis. The analysis alone is {1000 * post:.2f} ms "
        f"a sentence on one thread, so at least {1e6 * post / 60:.0f} worker-minutes for 1 M sentences: "
        f"{1e6 * post / 60 / 8:.0f} min on 8 workers, {1e6 * post / 60 / 32:.1f} min on 32, plus tokenizing and "
        "copying (part of the tracing time above); give each GPU worker several CPU threads.",
        "",
        f"The limit is the driver: it reads, parses and ships every sentence ({1e6 / rate:.0f} s for 1 M at "
        f"{rate:,.0f}/s) and merges {shards:.0f} shard states ({shards * merge_per_shard:.1f} s). With N workers "
        f"each at {1 / post:,.0f} sentences/s, the driver's {rate:,.0f}/s is reached at N ~ {rate * post:.0f}; "
        "beyond that, read the corpus on the workers (give each a byte range of the file) instead of on the "
        "driver. Model loading (once per worker) and Ray's start are fixed costs, seconds to a minute for "
        "MiniLM, longer for a 7 B model (read from local disk on each node, one GPU each, or tensor-parallel).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--treebank", type=Path, default=TRAIN)
    p.add_argument("--limit", type=int, default=None, help="first N sentences (default: all 12,543)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-write", action="store_true", help=f"print only; do not write {RESULTS.name}")
    p.add_argument("--child", choices=CONTENDERS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.treebank, args.limit, args.batch_size)))
        return
    rate = reading_rate(args.treebank, args.limit)
    results = []
    print("running local ...", file=sys.stderr, flush=True)
    results.append(run_child("local", args))
    with ray_cluster() as (address, cluster_start):
        for mode in CONTENDERS[1:]:
            print(f"running {mode} on the cluster at {address} ...", file=sys.stderr, flush=True)
            results.append(run_child(mode, args, address))
    load = os.getloadavg()
    local, ray2 = results[0], results[2]
    ratio = (ray2["start_s"] + ray2["run_s"]) / (local["start_s"] + local["run_s"])
    overhead = max((r["merge_s"] + r["serial_s"] + r["final_dumps_s"]) / (r["start_s"] + r["run_s"]) for r in results)
    state = max(max(r["final_state_bytes"], r["shard_state_bytes"] or 0) for r in results)
    run_ratio = ray2["run_s"] / local["run_s"]
    equal = "yes" if len({r["report_sha"] for r in results}) == 1 else "NO"
    targets = [
        f"- ray-2 total wall / local: {ratio:.2f} (target <= 1.15): {'met' if ratio <= 1.15 else 'NOT met'}",
        f"- merge + serialisation, worst engine: {100 * overhead:.3f} % of its total (target <= 2 %): "
        f"{'met' if overhead <= 0.02 else 'NOT met'}",
        f"- largest partial state: {state / 1024:.0f} KB (target <= 1 MB): {'met' if state <= 1 << 20 else 'NOT met'}",
        f"- report.json equal to local's for every engine: {equal}",
        f"- (for information) ray-2 run alone / local run alone: {run_ratio:.2f}",
    ]
    if args.limit:
        targets.append(
            f"- with --limit {args.limit} the start (connecting, each worker loading the model) weighs far more "
            "than on the full corpus, and fewer than 2 shards of 512 leave a worker idle: the targets are for the "
            "full run (no --limit)"
        )
    n = local["sentences"]
    text = (
        f"# Engines: local against Ray (`benchmarks/engines.py`)\n\n"
        f"`probe deps`, embedded MiniLM on CPU, `{args.treebank.name}`, {n} sentences"
        f"{' (--limit ' + str(args.limit) + ')' if args.limit else ''}, batch size {args.batch_size}; "
        f"{os.cpu_count()} CPUs, load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
        "Start = engine started and model loaded (Ray: the job connecting to a running 2-CPU cluster on "
        f"127.0.0.1 and its actors loading the model; that cluster was started once, "
        f"in {cluster_start:.1f} s, before the Ray jobs and outside their times, as on a real cluster); "
        "run = the analysis; x local compares totals.\n\n"
        + table(results)
        + "\n## Targets\n\n"
        + "\n".join(targets)
        + "\n\n## 1 M sentences on N GPU workers (on paper, from the numbers above)\n\n"
        + projection(results, rate)
        + "\n<details><summary>raw</summary>\n\n```json\n"
        + json.dumps(results, indent=1)
        + "\n```\n</details>\n"
    )
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
