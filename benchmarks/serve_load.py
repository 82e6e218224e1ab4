"""Load on ``attnscope serve`` (issue 10): 50 concurrent clients x 20 requests on 127.0.0.1 against a running server.

The server is started as a subprocess (``python -m attnscope.cli serve --port 0``, the embedded MiniLM unless
``--model``), once per queue size asked for (``--queues 8,64``: the default queue of 8 waiting requests per
model, and one deep enough that every client waits its turn; then the first again with clients that honour
Retry-After, unless ``--no-polite``). Each client has its own HTTP connection and
sends ``POST /api/trace`` for an EWT-like sentence (a different one per request), one request after the other
and without retrying: a 503 counts as answered, and the client goes on. Reported per run: wall time, answers
per second (200s only, and all), latency p50/p95/max of the 200s (from sending to the last byte) and of the
503s, count of each status. Any answer other than 200 or a 503 with a Retry-After header, or a transport
error, is a failure: the script prints it and exits 1.

Run: .venv/bin/python benchmarks/serve_load.py [--clients 50] [--requests 20] [--queues 8,64] [--model M]
     [--no-write]
Results: benchmarks/results/serve_load.md (unless --no-write). The clients run in this process and share
the machine's cores with the server; on a 2-core box they take a visible share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.md"
SENTENCES = (
    "The cat is very sad because it could not find food to eat.",
    "I would like to book a table for two at seven tonight.",
    "She said the new bridge will open to traffic next spring.",
    "Our flight was delayed for three hours and nobody told us why.",
    "The committee approved the budget after a long debate on Tuesday.",
    "He left his keys on the kitchen table before going to work.",
    "Can you recommend a good dentist near the city centre?",
    "The results of the study were published in a major journal last year.",
    "We walked along the river until the sun went down behind the hills.",
    "Prices rose sharply in the first quarter, according to the report.",
)


def start_server(model: str | None, queue: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``attnscope serve`` on a free port of 127.0.0.1; the process and its URL."""
    cmd = [sys.executable, "-m", "attnscope.cli", "serve", "--port", "0", "--queue", str(queue)]
    if model:
        cmd += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("attnscope app: "):
            return proc, line.split()[2].rstrip("/")
    proc.kill()
    raise SystemExit(f"the server did not start: {' '.join(cmd)}")


async def one_client(
    url: str, model: str, n: int, requests: int, out: list[tuple[int, float, str]], polite: bool = False
) -> None:
    """``requests`` trace requests one after the other on one connection; (status, seconds, problem) each.

    ``polite``: after a 503 the client waits the Retry-After seconds before its next request (as a browser or
    a well-behaved script would); otherwise it goes on at once (the harshest load)."""
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        for i in range(requests):
            text = SENTENCES[(n + i) % len(SENTENCES)]
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/trace", json={"model": model, "text": text})
                body = r.content
            except httpx.HTTPError as err:
                out.append((-1, time.perf_counter() - t0, f"transport error: {type(err).__name__}: {err}"))
                continue
            seconds = time.perf_counter() - t0
            problem = ""
            if r.status_code == 503:
                if not r.headers.get("retry-after", "").isdigit():
                    problem = "503 without a Retry-After of whole seconds"
                elif polite:
                    await asyncio.sleep(int(r.headers["retry-after"]))
            elif r.status_code != 200:
                problem = f"status {r.status_code}: {body[:200]!r}"
            elif b'"payload"' not in body:
                problem = "200 without a payload"
            out.append((r.status_code, seconds, problem))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]


async def run_load(url: str, model: str, clients: int, requests: int, polite: bool) -> dict[str, Any]:
    """All clients at once; the measurements of the run."""
    out: list[tuple[int, float, str]] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(url, model, n, requests, out, polite) for n in range(clients)))
    wall = time.perf_counter() - t0
    ok = [s for status, s, problem in out if status == 200 and not problem]
    busy = [s for status, s, problem in out if status == 503 and not problem]
    return {
        "wall": wall,
        "statuses": Counter(status for status, _, _ in out),
        "problems": [problem for _, _, problem in out if problem],
        "ok": ok,
        "busy": busy,
        "total": len(out),
    }


def ms(seconds: float) -> str:
    """Milliseconds, one decimal ("-" for none)."""
    return "-" if seconds != seconds else f"{seconds * 1000:.1f}"


def main() -> int:
    """Run the load for each queue size, print a table, write the results file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--queues", default="8,64", help="queue sizes to run with, comma-separated")
    ap.add_argument("--model", default=None, help="model to serve (default: the embedded MiniLM)")
    ap.add_argument(
        "--no-polite", action="store_true", help="skip the last run (first queue size, clients honour Retry-After)"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    failed = False
    queues = [int(q) for q in args.queues.split(",")]
    runs = [(q, False) for q in queues] + ([] if args.no_polite else [(queues[0], True)])
    for queue, polite in runs:
        proc, url = start_server(args.model, queue)
        try:
            model = httpx.get(url + "/api/models", timeout=60).json()["models"][0]
            result = asyncio.run(run_load(url, model, args.clients, args.requests, polite))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        ok, busy = result["ok"], result["busy"]
        row = (
            f"| {queue} | {'waits' if polite else 'goes on'} | "
            f"{result['total']} | {result['wall']:.1f} | {len(ok) / result['wall']:.1f} | "
            f"{result['total'] / result['wall']:.1f} | {ms(percentile(ok, 0.5))} | {ms(percentile(ok, 0.95))} | "
            f"{ms(max(ok, default=float('nan')))} | {len(busy)} | {ms(percentile(busy, 0.5))} | "
            f"{len(result['problems'])} |"
        )
        rows.append(row)
        print(f"queue {queue}{' (clients honour Retry-After)' if polite else ''}: statuses {dict(result['statuses'])}")
        for problem in result["problems"][:10]:
            print(f"  FAILURE: {problem}")
        failed = failed or bool(result["problems"])
    header = (
        "| queue | after a 503 the client | requests | wall s | 200/s | answers/s | p50 ms (200) | p95 ms (200) | "
        "max ms (200) | 503s | p50 ms (503) | failures |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    table = header + "\n" + "\n".join(rows)
    print(table)
    if not args.no_write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        model = args.model or "sentence-transformers/all-MiniLM-L6-v2 (embedded)"
        text = (
            "# attnscope serve under load (issue 10)\n\n"
            f"Measured {when} at commit {commit.stdout.strip() or '?'} with `.venv/bin/python benchmarks/serve_load.py "
            f"--clients {args.clients} --requests {args.requests} --queues {args.queues}`.\n"
            f"Model: {model}, CPU. Machine: {os.cpu_count()} cores, shared by the server (one forward pass at a time "
            "per model) and the clients (one asyncio process).\n"
            f"{args.clients} concurrent clients x {args.requests} `POST /api/trace` requests each (one sentence of "
            "12-14 words; answer: views payload with queries and keys, ~0.5 MB JSON); a 503 is not retried.\n\n"
            f"{table}\n\n"
            "- queue = requests that may wait per model besides the one running (`attnscope serve --queue N`, "
            "default 8); beyond it the server answers 503 with Retry-After at once.\n"
            "- after a 503 the client: goes on = sends its next request at once (the harshest load: the 503s "
            "come back in milliseconds, so clients spin and share the CPU with the forward passes); waits = "
            "sleeps the Retry-After seconds first, as a well-behaved client does.\n"
            "- latency = from sending a request to the last byte of its answer, waiting in the queue included; "
            "with a deep queue every client waits for the others' forward passes (p50 ~ clients x one pass). "
            "The clients' own event loop counts too: while it spins on 503s it reads the 200s' answers late "
            "(the long p95 of the first run).\n"
            "- failures = any answer other than 200 or a 503 with Retry-After, or a transport error "
            f"({'some: see above' if failed else 'none'}).\n"
        )
        tmp = RESULTS.with_suffix(".md.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, RESULTS)
        print(f"written {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
