"""How much does ``probe deps`` cost over a bare batched forward pass, and how much memory does it hold?

On the embedded MiniLM (CPU unless CUDA is present) over the EWT dev treebank (2,002 sentences), three
contenders on the same sentences and batch size B:
  - bare (file order): tokenize with padding + ``model(**batch, output_attentions=True)`` in batches of B
    sentences in file order, outputs dropped;
  - bare (length-sorted): the same with sentences sorted by token count inside windows of 8 batches, as
    trace_many groups them (the fair floor: same padding);
  - probe deps: attnscope.probe.deps.probe_deps (trace_many + word attention + counting per head and
    relation), plus, once at the end, building every report file in memory (JSON, Markdown, a PNG heatmap
    per relation with >= 10 arcs, the HTML page with head views of example sentences).
Targets (issue 4): probe deps <= 1.5x the bare pass; peak memory <= 2 GB.

The machine is shared, so the corpus is cut into chunks and the contenders take turns chunk by chunk
(rotating who goes first); each contender's time is the sum over chunks. Wall time and process CPU time
(user + system of all threads, less sensitive to other load) are both printed. Model loading is not timed.

Memory: after the timing, ``probe deps`` runs alone over all sentences in a fresh child process (model
loaded, analysis and report files built); its peak resident set size (``ru_maxrss``: model, tokenizer,
Python and everything allocated, at the high-water mark) is printed beside the same for a child that only
loads the model and runs the bare pass.

At the end: the best head per relation for the relations of Clark et al.'s Table 1 that EWT's UD v1
labels have, with their offset baselines.

Run: .venv/bin/python benchmarks/probe_speed.py [--limit N] [--batch-size B] [--chunk N] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-ewt" / "en_ewt-uds-dev.conllu"
RELATIONS = ("det", "nsubj", "dobj", "amod", "aux", "nmod", "case", "advmod", "compound", "mark")
NAMES = {"bare": "bare forward (file order)", "sorted": "bare forward (length-sorted)", "probe": "probe deps"}


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_pass(handle: Any, texts: list[str], batch_size: int, *, sort: bool) -> None:
    """Tokenize + forward with attention output, in batches; nothing kept."""
    import torch

    tok, model = handle.tokenizer, handle.model
    if sort:
        window = batch_size * 8
        ordered: list[str] = []
        for start in range(0, len(texts), window):
            chunk = texts[start : start + window]
            ordered += sorted(chunk, key=lambda t: len(tok(t)["input_ids"]))
        texts = ordered
    for i in range(0, len(texts), batch_size):
        batch = tok(texts[i : i + batch_size], padding=True, return_tensors="pt").to(handle.device)
        with torch.inference_mode():
            model(**batch, output_attentions=True)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def timing(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved timing of the three contenders in this process."""
    import attnscope
    from attnscope.probe.data import read_treebank
    from attnscope.probe.deps import DepsCounts, probe_deps
    from attnscope.probe.deps_report import deps_outputs

    handle = attnscope.load()
    sentences = list(read_treebank(DEV, limit=args.limit))
    counts = DepsCounts(handle.info.num_layers, handle.info.num_heads)
    wall = dict.fromkeys(NAMES, 0.0)
    cpu = dict.fromkeys(NAMES, 0.0)
    chunks = [sentences[i : i + args.chunk] for i in range(0, len(sentences), args.chunk)]
    bare_pass(handle, [s.text for s in sentences[:32]], args.batch_size, sort=False)  # warm-up
    for n, chunk in enumerate(chunks):
        texts = [s.text for s in chunk]
        jobs = {
            "bare": lambda texts=texts: bare_pass(handle, texts, args.batch_size, sort=False),
            "sorted": lambda texts=texts: bare_pass(handle, texts, args.batch_size, sort=True),
            "probe": lambda chunk=chunk: probe_deps(
                handle, chunk, batch_size=args.batch_size, progress=False, counts=counts
            ),
        }
        order = list(jobs)[n % 3 :] + list(jobs)[: n % 3]
        for kind in order:
            w, c = timed(jobs[kind])
            wall[kind] += w
            cpu[kind] += c
        print(f"  chunk {n + 1}/{len(chunks)}: " + ", ".join(f"{k} {wall[k]:.0f}s" for k in NAMES), file=sys.stderr)
    settings = {"limit": args.limit, "batch_size": args.batch_size, "min_count": 10}
    files: dict[str, Any] = {}
    w, c = timed(lambda: files.update(deps_outputs(handle, counts, DEV, settings)))
    report = json.loads(files["report.json"])
    return {
        "sentences": len(sentences),
        "device": str(handle.device),
        "wall": wall,
        "cpu": cpu,
        "report_wall": w,
        "report_cpu": c,
        "files": len(files),
        "html_mb": len(files["index.html"]) / 2**20,
        "relations": {r: report["relations"][r] for r in RELATIONS if r in report["relations"]},
        "all_relations": report["all_relations"],
        "special_share": report["special_share"]["mean"],
        "main_peak_rss_mb": peak_rss_mb(),
    }


def memory_child(kind: str, limit: int | None, batch_size: int) -> dict[str, float]:
    """One contender alone over all sentences, for its own peak RSS."""
    import attnscope
    from attnscope.probe.data import read_treebank

    handle = attnscope.load()
    sentences = list(read_treebank(DEV, limit=limit))
    loaded = peak_rss_mb()
    before = current_rss_mb()
    tracemalloc.start()
    if kind == "probe":
        from attnscope.probe.deps import probe_deps
        from attnscope.probe.deps_report import deps_outputs

        counts = probe_deps(handle, sentences, batch_size=batch_size, progress=False)
        deps_outputs(handle, counts, DEV, {"limit": limit, "batch_size": batch_size, "min_count": 10})
    else:
        bare_pass(handle, [s.text for s in sentences], batch_size, sort=True)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    return {
        "loaded_mb": loaded,
        "peak_mb": peak_rss_mb(),
        "rss_before_mb": before,
        "rss_after_mb": current_rss_mb(),
        "traced_peak_mb": traced,
    }


def current_rss_mb() -> float:
    """Resident set size now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(kind: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, "--batch-size", str(args.batch_size)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only (default: all 2,002)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=256, help="sentences per turn of the interleaving")
    parser.add_argument("--no-memory", action="store_true", help="skip the separate peak-memory runs")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(memory_child(args.child, args.limit, args.batch_size)))
        return
    if not DEV.is_file():
        sys.exit(f"EWT dev treebank not found at {DEV}")
    t = timing(args)
    mem = {} if args.no_memory else {k: run_child(k, args) for k in ("sorted", "probe")}
    wall, cpu, floor_w, floor_c = t["wall"], t["cpu"], t["wall"]["sorted"], t["cpu"]["sorted"]
    print(
        f"probe deps vs bare forward pass: MiniLM (6x12), EWT dev, {t['sentences']} sentences, "
        f"batch {args.batch_size}, device {t['device']}, interleaved in chunks of {args.chunk}"
    )
    print()
    print(f"{'contender':38} {'wall s':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6}")
    rows = [(NAMES[k], wall[k], cpu[k]) for k in NAMES]
    rows.append(("probe deps + report files", wall["probe"] + t["report_wall"], cpu["probe"] + t["report_cpu"]))
    for name, w, c in rows:
        print(f"{name:38} {w:7.1f} {w / floor_w:6.2f} {c:7.1f} {c / floor_c:6.2f}")
    print("(ratios against the length-sorted bare pass)")
    print(
        f"vs the file-order bare pass: probe deps {wall['probe'] / wall['bare']:.2f}x wall, "
        f"{cpu['probe'] / cpu['bare']:.2f}x CPU; with report files "
        f"{(wall['probe'] + t['report_wall']) / wall['bare']:.2f}x wall"
    )
    print(f"report files: {t['files']} files built in {t['report_wall']:.1f} s (index.html {t['html_mb']:.1f} MiB)")
    print()
    if mem:
        print("memory of a fresh process doing only this over all sentences (MiB):")
        print(f"{'':36} {'peak RSS':>9} {'RSS before':>11} {'RSS after':>10} {'traced peak':>12}")
        for name, m in (
            ("bare forward pass (length-sorted)", mem["sorted"]),
            ("probe deps + report files", mem["probe"]),
        ):
            print(
                f"{name:36} {m['peak_mb']:9.0f} {m['rss_before_mb']:11.0f} {m['rss_after_mb']:10.0f} "
                f"{m['traced_peak_mb']:12.1f}"
            )
        print(
            "  peak RSS = ru_maxrss (whole process incl. model and torch, high-water mark, model loading included: "
            f"{mem['probe']['loaded_mb']:.0f} after loading); RSS before/after = VmRSS around the run; traced peak = "
            "tracemalloc's peak of Python and numpy allocations during the run (torch's own buffers not traced)"
        )
    print(f"timing process (all contenders, one process): peak RSS {t['main_peak_rss_mb']:.0f} MiB")
    print()
    print(
        f"Best head per relation (layer-head, 0-based; accuracy %; mean special-token share "
        f"{100 * t['special_share']:.1f}%):"
    )
    print()
    print("| relation | count | best head | direction | accuracy | baseline offset | baseline | margin |")
    print("|---|---|---|---|---|---|---|---|")
    for label, e in [*t["relations"].items(), ("all relations", t["all_relations"])]:
        layer, head = e["best_head"]
        print(
            f"| {label} | {e['count']} | {layer}-{head} | {e['direction']} | {100 * e['accuracy']:.1f} | "
            f"{e['baseline_offset']:+d} | {100 * e['baseline_accuracy']:.1f} | {100 * e['margin']:+.1f} |"
        )


if __name__ == "__main__":
    main()
