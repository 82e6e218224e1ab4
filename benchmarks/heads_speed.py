"""What does ``attnscope heads`` cost over a bare batched forward pass, does its memory stay flat as the corpus
grows, and what does ``find --pattern induction`` cost over the forward passes it needs?

1. Speed (issue 8 target: <= 1.3x). The embedded MiniLM (6x12; CUDA if present, else CPU) over EWT train
   (12,543 sentences, ``--limit N`` for the first N), batch B, in one process, model loaded once (not timed):
     - bare forward: tokenize with padding + ``model(**batch, output_attentions=True)``, sentences sorted by
       token count inside windows of 8 batches as ``trace_many`` groups them (same padding: the fair floor);
     - attnscope heads: exactly what the command's local engine does (``process_shard`` of ``HeadsAnalysis``
       per chunk, merged in order), plus, once at the end, ``finalize``: report.json, report.md, figures and index.html.
   The machine may be shared, so the corpus is cut into turns of ``--chunk`` sentences and the two take
   turns (alternating who goes first); each one's time is its sum over turns. Wall and process CPU time.
2. Memory (targets: peak RSS <= 1.5 GB, the same at 2,000 and 12,543 sentences). The real command,
   ``attnscope heads --corpus TRAIN --limit N --out TMP``, in a fresh child process per size; the child
   reports its own ``ru_maxrss`` (high-water mark of the whole process: Python, torch, model, everything).
3. ``find --pattern induction`` (target <= 2x). A tiny random LLaMA with 32 heads per layer (4 layers,
   hidden 256, 8 key/value heads, MiniLM's tokenizer) on generated inputs (``--sequences`` random spans of
   ``--span`` tokens repeated twice, seeded), ``find_heads(..., pattern="induction", generated=True)``
   against ``model(input_ids=batch, output_attentions=True, use_cache=False)`` on the same id sequences and batches,
   ``--rounds`` alternating rounds, summed.

Results: printed, and written to benchmarks/results/heads_speed.md on a full run (``--results PATH`` to
choose; a ``--limit`` run writes nothing unless given one).

Run: .venv/bin/python benchmarks/heads_speed.py [--limit N] [--batch-size B] [--chunk N] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from probe_speed import bare_pass, peak_rss_mb, timed

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-uds-train.conllu"
RESULTS = Path(__file__).resolve().parent / "results" / "heads_speed.md"
MEMORY_SIZES = (2000, None)  # None: the whole corpus
LLAMA = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 32, "num_key_value_heads": 8,
         "intermediate_size": 512, "max_position_embeddings": 2048}  # fmt: skip


def heads_timing(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved turns of the bare pass and the heads analysis over the same sentences."""
    import attnscope
    from attnscope.corpus.engines import chunk_size, process_shard
    from attnscope.corpus.protocol import Finalize, ModelRef, payload_maker
    from attnscope.corpus.readers import read_corpus
    from attnscope.heads.analysis import HeadsAnalysis

    handle = attnscope.load()
    items = list(read_corpus(TRAIN, limit=args.limit))
    texts = [item.text for item in items]
    analysis = HeadsAnalysis()
    size = chunk_size(args.batch_size)
    turn = max(size, args.chunk // size * size)  # whole chunks, so batches are the command's own
    wall = {"bare": 0.0, "heads": 0.0}
    cpu = {"bare": 0.0, "heads": 0.0}
    bare_pass(handle, texts[:32], args.batch_size, sort=False)  # warm-up
    state = analysis.new_state(handle.info)
    for n, start in enumerate(range(0, len(items), turn)):
        part = items[start : start + turn]

        def heads(part: list[Any] = part, start: int = start) -> None:
            analysis.merge(state, process_shard(handle, analysis, start, part, args.batch_size))

        jobs = {"bare": lambda part=part: bare_pass(handle, [i.text for i in part], args.batch_size, sort=True),
                "heads": heads}  # fmt: skip
        for kind in ("bare", "heads") if n % 2 == 0 else ("heads", "bare"):
            w, c = timed(jobs[kind])
            wall[kind] += w
            cpu[kind] += c
        print(f"  {start + len(part)}/{len(items)}: bare {wall['bare']:.0f}s, heads {wall['heads']:.0f}s",
              file=sys.stderr)  # fmt: skip
    files: dict[str, Any] = {}
    settings = {"limit": args.limit, "batch_size": args.batch_size}
    payload = payload_maker(handle, None)  # index.html's example head views, as the command makes them
    context = Finalize(ModelRef(handle.name, handle.info), {"corpus": TRAIN}, settings, payload)
    fw, fc = timed(lambda: files.update(analysis.finalize(state, context)))
    report = json.loads(files["report.json"])
    return {"sentences": len(items), "device": str(handle.device), "wall": wall, "cpu": cpu,
            "finalize_wall": fw, "finalize_cpu": fc, "files": sorted(files), "rows": report["rows"],
            "skipped": report["skipped"]}  # fmt: skip


def memory_child(limit: int | None, batch_size: int) -> dict[str, Any]:
    """Run the real command once in this (fresh) process; its peak RSS."""
    from attnscope.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["heads", "--corpus", str(TRAIN), "--out", f"{tmp}/out", "--batch-size", str(batch_size)]
        code = main([*argv, *(["--limit", str(limit)] if limit else []), "--no-progress"])
        report = json.loads(Path(f"{tmp}/out/report.json").read_text(encoding="utf-8"))
    return {"code": code, "sentences": report["sentences"], "peak_mb": peak_rss_mb()}


def run_memory(limit: int | None, batch_size: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--batch-size", str(batch_size)]
    done = subprocess.run([*cmd, *(["--limit", str(limit)] if limit else [])], check=True, capture_output=True,
                          text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def tiny_llama() -> Any:
    """A random LLaMA with 32 heads per layer (seeded), eager attention, MiniLM's tokenizer."""
    import torch
    import transformers

    from attnscope.loading import ModelHandle, default_model_path

    config = transformers.LlamaConfig(vocab_size=30522, **LLAMA)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(default_model_path())
    return ModelHandle.from_model(model, tokenizer, "tiny-llama-32h")


def find_timing(args: argparse.Namespace) -> dict[str, Any]:
    """``find_heads(pattern="induction", generated=True)`` against the bare forward passes on the same ids."""
    import torch

    from attnscope.heads import find_heads
    from attnscope.heads.generate import repeated_ids

    handle = tiny_llama()
    sequences = repeated_ids(handle, args.sequences, args.span, 2, 0)

    def bare() -> None:
        for b in range(0, len(sequences), args.batch_size):
            ids = torch.tensor(sequences[b : b + args.batch_size], device=handle.device)
            with torch.inference_mode():
                handle.model(
                    input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, use_cache=False
                )  # as a trace runs it: no key/value cache

    ranking: list[dict[str, Any]] = []

    def find() -> None:
        result = find_heads(handle, pattern="induction", generated=True, n_sequences=args.sequences,
                            span=args.span, batch_size=args.batch_size)  # fmt: skip
        ranking[:] = result.ranking()

    bare()  # warm-up
    wall = {"bare": 0.0, "find": 0.0}
    jobs = {"bare": bare, "find": find}
    for n in range(args.rounds):
        for kind in ("bare", "find") if n % 2 == 0 else ("find", "bare"):
            wall[kind] += timed(jobs[kind])[0]
    info = handle.info
    return {"layers": info.num_layers, "heads": info.num_heads, "tokens": len(sequences[0]), "wall": wall,
            "top": ranking[0]}  # fmt: skip


def report_lines(
    args: argparse.Namespace, t: dict[str, Any], mem: list[dict[str, Any]], f: dict[str, Any]
) -> list[str]:
    w, c = t["wall"], t["cpu"]
    total_w, total_c = w["heads"] + t["finalize_wall"], c["heads"] + t["finalize_cpu"]
    lines = [
        "# attnscope heads / find: speed and memory",
        "",
        f"`python benchmarks/heads_speed.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"{platform.python_version()}, device {t['device']}, {time.strftime('%Y-%m-%d')}.",
        "",
        f"## heads: MiniLM (6x12), EWT train, {t['sentences']} sentences ({t['rows']} query rows), batch "
        f"{args.batch_size}, turns of {args.chunk}",
        "",
        "| contender | wall s | x bare | CPU s | x bare |",
        "|---|---|---|---|---|",
        f"| bare forward (length-sorted) | {w['bare']:.1f} | 1.00 | {c['bare']:.1f} | 1.00 |",
        f"| attnscope heads (analysis) | {w['heads']:.1f} | {w['heads'] / w['bare']:.2f} | {c['heads']:.1f} | "
        f"{c['heads'] / c['bare']:.2f} |",
        f"| attnscope heads + report files | {total_w:.1f} | {total_w / w['bare']:.2f} | {total_c:.1f} | "
        f"{total_c / c['bare']:.2f} |",
        "",
        f"Target <= 1.3x: {'met' if total_w / w['bare'] <= 1.3 else 'NOT met'} "
        f"({total_w / w['bare']:.2f}x wall, with the report files: {', '.join(t['files'])}; "
        f"finalize {t['finalize_wall']:.1f} s).",
        "",
    ]
    if mem:
        peaks = [m["peak_mb"] for m in mem]
        lines += ["## Peak memory of the command (fresh process per size)", "", "| sentences | peak RSS MiB |",
                  "|---|---|", *(f"| {m['sentences']} | {m['peak_mb']:.0f} |" for m in mem), "",
                  f"Target <= 1.5 GB (1,536 MiB) and flat: max {max(peaks):.0f} MiB, spread "
                  f"{max(peaks) - min(peaks):.0f} MiB ({'met' if max(peaks) <= 1536 else 'NOT met'}).", ""]  # fmt: skip
    fw = f["wall"]
    ratio = fw["find"] / fw["bare"]
    lines += [
        f"## find --pattern induction: tiny random LLaMA ({f['layers']}x{f['heads']}), {args.sequences} generated "
        f"sequences of {f['tokens']} tokens, batch {args.batch_size}, {args.rounds} rounds",
        "",
        "| contender | wall s | x bare |",
        "|---|---|---|",
        f"| bare forward passes | {fw['bare']:.2f} | 1.00 |",
        f"| find_heads(pattern='induction', generated=True) | {fw['find']:.2f} | {ratio:.2f} |",
        "",
        f"Target <= 2x: {'met' if ratio <= 2 else 'NOT met'} ({ratio:.2f}x). Top head of the random model: "
        f"<{f['top']['layer']},{f['top']['head']}> score {f['top']['score']}.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only (default: all 12,543)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=512, help="sentences per turn of the interleaving")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child runs")
    parser.add_argument("--sequences", type=int, default=256, help="generated sequences for find (default 256)")
    parser.add_argument("--span", type=int, default=50, help="random tokens per copy (default 50)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of the find timing")
    parser.add_argument("--results", type=Path, default=None, help="write the Markdown here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(memory_child(args.limit, args.batch_size)))
        return
    if not TRAIN.is_file():
        sys.exit(f"EWT train not found at {TRAIN}")
    timing = heads_timing(args)
    # full run: 2,000 sentences and the whole corpus; a --limit check: half and all of the limit
    sizes = [max(1, args.limit // 2), args.limit] if args.limit else list(MEMORY_SIZES)
    mem = [] if args.no_memory else [run_memory(s, args.batch_size) for s in sizes]
    text = "\n".join(report_lines(args, timing, mem, find_timing(args))) + "\n"
    print(text)
    target = args.results or (None if args.limit else RESULTS)
    if target is not None:
        from attnscope.files import write_atomic

        write_atomic(target, text)
        print(f"written to {target}")


if __name__ == "__main__":
    main()
