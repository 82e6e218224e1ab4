"""What does ``attnscope index`` cost, how big is the index, is memory bounded, how fast and how exact is search?

Issue 10 targets, on EWT train (12,543 sentences, ~230 k word pieces) with the embedded MiniLM (6x12; CUDA if
present, else CPU), all 6 layers, both kinds (per-head context vectors and layer embeddings):

1. Build <= 2x a bare batched forward pass. In one process, model loaded once (not timed): the bare pass
   (tokenize with padding + ``model(**batch, output_attentions=True)``, sentences sorted by length inside windows
   of 8 batches as the index groups them), then the build (``build_index``: forward passes with hooks, spool
   files, FAISS and Parquet, the folder swapped in), then the bare pass again; the build is compared with the
   faster of the two bare passes (the machine may be shared). Wall and process CPU time.
2. Index <= 1.5 GB on disk: the output folder's size, per file kind.
3. Memory bounded by a batch: the real command, ``attnscope index --corpus TRAIN --limit N --out TMP``, in a
   fresh child process at two sizes (``--memory-sizes``), run first; the child reports its own high-water mark
   (``VmHWM``: ``ru_maxrss`` would include the parent's resident memory at the time it was spawned).
4. Query <= 50 ms at k = 10 on one layer (``--layer``, default 3): median and p95 over ``--queries`` queries
   (corpus tokens drawn with a fixed seed), both the FAISS lookup alone and ``SearchIndex.search`` end to end
   (tracing the query sentence, the lookup, metadata), context vectors, all heads.
5. Recall@10 >= 0.95 against exact search wherever the index is approximate (``sq8``): exact float32 vectors of
   that layer recomputed over the corpus, brute-force inner products in numpy; for context with all heads,
   context with heads 0-3 (the heads filter) and embeddings.

Results: printed, and written to benchmarks/results/index_speed.md on a full run (``--results PATH`` to choose;
a ``--limit`` run writes nothing unless given one).

Run: .venv/bin/python benchmarks/index_speed.py [--limit N] [--batch-size B] [--storage auto|flat|sq8]
     [--memory-sizes N,M] [--no-memory] [--queries Q] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from probe_speed import bare_pass, peak_rss_mb, timed

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-uds-train.conllu"
RESULTS = Path(__file__).resolve().parent / "results" / "index_speed.md"
FILTER_HEADS = (0, 1, 2, 3)


def build_timing(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Bare pass, build, bare pass (same process, same model, same sentences)."""
    import attnscope
    from attnscope.index import build_index
    from attnscope.index.build import read_index_corpus

    handle = attnscope.load()
    texts = [item.text for item in read_index_corpus(TRAIN, args.limit)]
    bare_pass(handle, texts[: args.batch_size * 8], args.batch_size, sort=True)  # warm-up
    bare1 = timed(lambda: bare_pass(handle, texts, args.batch_size, sort=True))
    build = timed(lambda: build_index(TRAIN, out, handle, limit=args.limit, batch_size=args.batch_size,
                                      storage=args.storage))  # fmt: skip
    bare2 = timed(lambda: bare_pass(handle, texts, args.batch_size, sort=True))
    sizes: dict[str, int] = {}
    for f in out.iterdir():
        kind = f.name.split(".", 1)[1] if f.name.startswith("layer") else f.name
        sizes[kind] = sizes.get(kind, 0) + f.stat().st_size
    return {"device": str(handle.device), "texts": len(texts), "bare": [bare1, bare2], "build": build,
            "sizes": sizes, "rss_mb": peak_rss_mb()}  # fmt: skip


def query_timing(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """FAISS lookup alone and search end to end, k=10, one layer; recall of sq8 against exact."""
    import attnscope
    from attnscope.corpus.protocol import TraceInput
    from attnscope.index import open_index
    from attnscope.index.build import read_index_corpus
    from attnscope.index.vectors import normalise, query_vector, token_vectors

    handle = attnscope.load()
    t0 = time.perf_counter()
    index = open_index(out)
    open_s = time.perf_counter() - t0
    layer, k = args.layer, 10
    rng = np.random.default_rng(0)
    rows = rng.choice(index.size, args.queries, replace=False)
    tokens = index._tokens  # the metadata table opened above
    items = list(read_index_corpus(TRAIN, args.limit))
    queries = [(int(tokens["sentence_index"][r]), int(tokens["token_index"][r])) for r in rows]
    faiss_index = index._index(layer, "context")
    index.search(handle, items[0].text, token=1, layer=layer, k=k)  # warm-up
    lookup, end_to_end = [], []
    for s, t in queries:
        raw = token_vectors(handle, [TraceInput(items[s].text)], [layer])[0].context[0, t]
        q = query_vector("context", raw, index.heads, None)[None, :]
        t0 = time.perf_counter()
        faiss_index.search(q, k)
        lookup.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.search(handle, items[s].text, token=t, layer=layer, k=k)
        end_to_end.append(time.perf_counter() - t0)
    result: dict[str, Any] = {"open_s": open_s, "lookup_ms": _quantiles(lookup), "search_ms": _quantiles(end_to_end),
                              "storage": index.manifest["storage"], "tokens": index.size, "recall": {}}  # fmt: skip
    if index.manifest["storage"] == "flat":
        return result  # exact search: nothing to compare
    # exact float32 vectors of this layer over the whole corpus, recomputed
    vecs = token_vectors(handle, [TraceInput(i.text) for i in items], [layer], batch_size=args.batch_size)
    query_rows = rows[: min(len(rows), 200)]
    for kind, heads in (("context", None), ("context", FILTER_HEADS), ("embedding", None)):
        corpus = np.concatenate([normalise(kind, getattr(v, kind)[0][~v.tokens.special], index.heads) for v in vecs])
        raw_all = np.concatenate([getattr(v, kind)[0][~v.tokens.special] for v in vecs])
        qs = np.stack([query_vector(kind, raw_all[r], index.heads, heads) for r in query_rows])
        exact = np.argsort(-(qs @ corpus.T), axis=1)[:, :k]
        _, found = index._index(layer, kind).search(qs, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)]))
        result["recall"][f"{kind}{'' if heads is None else ' heads 0-3'}"] = recall
        del corpus, raw_all
    return result


def _quantiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "n": len(ms)}


def memory_at(n: int | None, args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of the real command in a fresh child process, indexing the first ``n`` sentences (None: all)."""
    with tempfile.TemporaryDirectory(prefix="index-mem-") as tmp:
        cli = ["index", "--corpus", str(TRAIN), "--out", f"{tmp}/out", "--no-progress",
               "--batch-size", str(args.batch_size), "--storage", args.storage]  # fmt: skip
        if n is not None:
            cli += ["--limit", str(n)]
        code = (
            "import json, resource, sys\nfrom attnscope.cli import main\n"
            # VmHWM is this process's own high-water mark; ru_maxrss would also count the parent's RSS at spawn
            "def peak():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            return int(line.split()[1]) / 1024\n"
            "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            f"rc = main({cli!r})\n"
            "print(json.dumps({'rc': rc, 'rss_mb': peak()}))"
        )
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"child failed: {done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        size = sum(f.stat().st_size for f in Path(tmp, "out").iterdir())
    return {"n": n, "rss_mb": report["rss_mb"], "wall_s": wall, "size_mb": size / 2**20}


def report_lines(
    args: argparse.Namespace, b: dict[str, Any], q: dict[str, Any], mem: list[dict[str, Any]]
) -> list[str]:
    (w1, c1), (w2, c2) = b["bare"]
    bw, bc = min(w1, w2), min(c1, c2)  # the same work twice: the faster one is the least disturbed
    ww, wc = b["build"]
    total = sum(b["sizes"].values())
    lines = [
        "# attnscope index: build cost, size, memory, query latency, recall",
        "",
        f"Command: `python benchmarks/index_speed.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}, device "
        f"{b['device']}; corpus: EWT train, first {b['texts']} sentences ({q['tokens']} tokens indexed), "
        f"MiniLM 6x12, all 6 layers, context + embedding, batch {args.batch_size}, storage {q['storage']}.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| bare forward (faster of before/after) | {bw:.1f} s wall, {bc:.1f} s CPU ({w1:.1f} / {w2:.1f} s) | |",
        f"| index build | {ww:.1f} s wall, {wc:.1f} s CPU | |",
        f"| build / bare forward | {ww / bw:.2f}x wall, {wc / bc:.2f}x CPU | <= 2x |",
        f"| index on disk | {total / 2**20:.0f} MiB | <= 1.5 GB |",
        f"| query, FAISS lookup, layer {args.layer}, k=10 | median {q['lookup_ms']['median']:.1f} ms, "
        f"p95 {q['lookup_ms']['p95']:.1f} ms ({q['lookup_ms']['n']} queries) | <= 50 ms |",
        f"| query, `SearchIndex.search` end to end (traces the sentence) | median {q['search_ms']['median']:.1f} ms, "
        f"p95 {q['search_ms']['p95']:.1f} ms | |",
        f"| open_index (metadata) | {q['open_s'] * 1000:.0f} ms | |",
    ]
    for name, value in q["recall"].items():
        lines.append(f"| recall@10 vs exact, {name} | {value:.3f} | >= 0.95 |")
    if not q["recall"]:
        lines.append("| recall@10 vs exact | 1 (flat storage: exact search) | >= 0.95 |")
    for m in mem:
        lines.append(f"| peak RSS, `attnscope index` on {m['n'] or 'all'} sentences | {m['rss_mb']:.0f} MiB "
                     f"({m['wall_s']:.0f} s, {m['size_mb']:.0f} MiB index) | bounded |")  # fmt: skip
    lines += ["", "Size by file kind: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sorted(b["sizes"].items()))]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences of EWT train (default all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--storage", choices=("auto", "flat", "sq8"), default="auto")
    parser.add_argument("--layer", type=int, default=3, help="layer queried (default 3)")
    parser.add_argument("--queries", type=int, default=120, help="queries timed (default 120)")
    parser.add_argument("--memory-sizes", default="2000,all", help="sentences per memory run (default 2000,all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the child-process memory runs")
    parser.add_argument("--results", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args()
    mem = []
    if not args.no_memory:  # first, while this process is small
        for size in args.memory_sizes.split(","):
            mem.append(memory_at(None if size == "all" else int(size), args))
            print(json.dumps(mem[-1]))
    work = Path(tempfile.mkdtemp(prefix="index-speed-"))
    try:
        out = work / "index"
        b = build_timing(args, out)
        print(json.dumps(b, indent=1))
        q = query_timing(args, out)
        print(json.dumps(q, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = report_lines(args, b, q, mem)
    print("\n".join(lines))
    target = args.results if args.results is not None else (RESULTS if args.limit is None else None)
    if target is not None:
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"written to {target}")


if __name__ == "__main__":
    main()
