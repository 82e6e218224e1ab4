"""Do the contribution measures agree with what the output needs? And what do they cost? (issue 9)

On the embedded MiniLM used as it is meant to be (mean-pooled sentence embedding), over the first
``--limit`` sentences of ../shared/data/ud-ewt/en_ewt-uds-dev.conllu (default 500):

1. Faithfulness. Per sentence, each measure gives token j an importance for the pooled output: the mean,
   over every output position i (the pooling averages them all), of its [i, j] entry — raw attention
   (last layer, head average), rollout (through all layers), flow (to the last layer), norm-based
   (‖Σ_h α f(x)‖, last layer), mixing (Kobayashi 2021, last layer), value zeroing (last layer), gradient ×
   input (last hidden states); plus mixing and value zeroing rolled out through the layers (a product of
   their row-normalised matrices, as their papers aggregate them). The reference is leave-one-token-out:
   1 - cos(embedding, embedding without token j), with the token removed (and, second column, replaced by
   [MASK]). Spearman's rho over the sentence's word pieces ([CLS]/[SEP] are never removed); mean and a
   95% interval (mean ± 1.96·sd/√n) over sentences.
2. Performance, side by side in the same run: rollout at 512 tokens; flow for all token pairs at 64
   tokens against the networkx reference of Abnar & Zuidema (tests/flow_reference.py; at 64 tokens one
   output row is timed and the rest extrapolated, at 16 tokens it runs in full) and their values compared;
   norm-based and mixing against a bare forward pass; value zeroing and gradient × input, whose cost grows
   with the number of tokens.

Run: .venv/bin/python benchmarks/faithfulness.py [--limit N] [--no-perf] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import attnscope
from attnscope import contrib
from attnscope.probe.data import read_treebank

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import flow_reference  # noqa: E402

DEV = Path(os.environ.get("ATTNSCOPE_SHARED", ROOT.parent / "shared")) / "data" / "ud-ewt" / "en_ewt-uds-dev.conllu"
RESULTS = ROOT / "benchmarks" / "results" / "faithfulness.md"
WORDS = "the cat sat on the mat because it could not find any food to eat today".split()  # noqa: SIM905
MEASURES = (
    "raw attention",
    "rollout",
    "flow",
    "norm-based",
    "mixing",
    "mixing, rolled out",
    "value zeroing",
    "value zeroing, rolled out",
    "gradient x input",
)


def chain(mats: np.ndarray) -> np.ndarray:
    """Product of row-normalised per-layer matrices [L, Q, K], last layer first: the input reaching the top."""
    out = np.eye(mats.shape[-1])
    for m in mats.astype(np.float64):
        out = (m / m.sum(-1, keepdims=True)) @ out
    return out


def importances(handle: Any, text: str) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Each measure's importance per token for the pooled output, the special-token mask, and seconds taken."""
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - start
        return out

    t = timed("trace(values=True)", lambda: attnscope.trace(handle, text, values=True))
    att = t.attention["encoder"]
    mats = {
        "raw attention": att[-1].mean(0),
        "rollout": timed("rollout", lambda: contrib.rollout(t))[-1],
        "flow": timed("flow", lambda: contrib.flow(t)),
        "norm-based": timed("norm-based", lambda: contrib.norms_summed(t))[-1],
    }
    mixing = timed("mixing", lambda: contrib.mixing(t))
    zeroed = timed("value zeroing", lambda: contrib.value_zeroing(handle, t))
    mats |= {
        "mixing": mixing[-1],
        "mixing, rolled out": chain(mixing),
        "value zeroing": zeroed[-1],
        "value zeroing, rolled out": chain(zeroed),
        "gradient x input": timed("gradient x input", lambda: contrib.gradient_x_input(handle, t)),
    }
    return {k: np.asarray(v, dtype=np.float64).mean(axis=0) for k, v in mats.items()}, t.tokens.special, seconds


def leave_one_out(handle: Any, text: str, special: np.ndarray) -> dict[str, np.ndarray]:
    """1 - cos(pooled embedding, pooled embedding with word piece j removed / masked), for each non-special j."""
    tok = handle.tokenizer
    ids = tok(text)["input_ids"]
    keep = [j for j in range(len(ids)) if not special[j]]

    def pooled(rows: list[list[int]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        batch = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode():
            hidden = handle.model(input_ids=batch, attention_mask=mask).last_hidden_state
        m = mask[..., None].float()
        return (hidden * m).sum(1) / m.sum(1)

    full = pooled([ids])
    out = {}
    for name, rows in (
        ("removed", [ids[:j] + ids[j + 1 :] for j in keep]),
        ("masked", [[*ids[:j], tok.mask_token_id, *ids[j + 1 :]] for j in keep]),
    ):
        emb = pooled(rows)
        out[name] = (1 - torch.nn.functional.cosine_similarity(emb, full.expand_as(emb), dim=-1)).double().numpy()
    return out


def interval(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return mean, mean - half, mean + half


def faithfulness(handle: Any, limit: int) -> dict[str, Any]:
    sentences = [s.text for s in read_treebank(DEV, limit=limit)]
    rhos: dict[str, dict[str, list[float]]] = {ref: {m: [] for m in MEASURES} for ref in ("removed", "masked")}
    seconds: dict[str, list[float]] = {}
    lengths, skipped = [], 0
    start = time.perf_counter()
    for number, text in enumerate(sentences, 1):
        imp, special, took = importances(handle, text)
        if len(special) > contrib.FLOW_MAX_TOKENS:
            skipped += 1
            continue
        for k, v in took.items():
            seconds.setdefault(k, []).append(v)
        lengths.append(len(special))
        loo = leave_one_out(handle, text, special)
        if (~special).sum() < 3:
            skipped += 1
            continue
        for ref, target in loo.items():
            for m in MEASURES:
                with warnings.catch_warnings():  # a constant ranking has no rho: counted out below
                    warnings.simplefilter("ignore")
                    rho = spearmanr(imp[m][~special], target).statistic
                if np.isfinite(rho):
                    rhos[ref][m].append(float(rho))
        if number % 50 == 0:
            print(f"  {number}/{len(sentences)} sentences, {time.perf_counter() - start:.0f} s", flush=True)
    return {
        "sentences": len(sentences),
        "skipped": skipped,
        "tokens_median": statistics.median(lengths),
        "tokens_max": max(lengths),
        "rho": {ref: {m: (*interval(v), len(v)) for m, v in per.items()} for ref, per in rhos.items()},
        "seconds_per_sentence": {k: statistics.median(v) for k, v in seconds.items()},
        "wall_seconds": time.perf_counter() - start,
    }


# -- performance ------------------------------------------------------------------------------------


def text_of_length(tokenizer: Any, n_tokens: int) -> str:
    words = [WORDS[i % len(WORDS)] for i in range(n_tokens - 2)]
    text = " ".join(words)
    assert len(tokenizer(text)["input_ids"]) == n_tokens
    return text


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Medians of (wall, CPU) seconds, the contenders taking turns call by call after one warm-up each.

    CPU time (of this process, all its threads) is the steadier figure on a shared machine.
    """
    for fn in fns.values():
        fn()
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in samples.items()}


def performance(handle: Any, repeats: int) -> dict[str, Any]:
    tok = handle.tokenizer
    out: dict[str, Any] = {}
    t512 = attnscope.trace(handle, text_of_length(tok, 512))
    wall, cpu = interleaved({"rollout": lambda: contrib.rollout(t512)}, repeats)["rollout"]
    out["rollout_512_ms"], out["rollout_512_cpu_ms"] = 1000 * wall, 1000 * cpu

    # flow: ours for all pairs; the reference in full at 16 tokens, one output row at 64 (then extrapolated)
    for n in (16, 64):
        t = attnscope.trace(handle, text_of_length(tok, n))
        a = 0.5 * (t.attention["encoder"].astype(np.float64).mean(1) + np.eye(n))
        mats = a / a.sum(-1, keepdims=True)
        start = time.perf_counter()
        ours = contrib.flow(t, normalize=False)
        ours_s = time.perf_counter() - start
        rows = list(range(n)) if n <= 16 else [0]
        start = time.perf_counter()
        adj, _ = flow_reference.get_adjmat(mats, [str(k) for k in range(n)])
        g = flow_reference.graph(adj)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        ref = np.array([[flow_reference.flow_value(g, len(mats) * n + i, j) for j in range(n)] for i in rows])
        pairs_s = time.perf_counter() - start
        ref_total = build_s + pairs_s * n / len(rows)
        out[f"flow_{n}"] = {
            "ours_s": ours_s,
            "reference_s": ref_total,
            "reference_measured": "all pairs" if len(rows) == n else f"{len(rows)} row ({len(rows) * n} pairs)",
            "speedup": ref_total / ours_s,
            "max_abs_diff": float(np.abs(ours[rows] - ref).max()),
        }

    # norm-based and mixing against a bare forward pass (the same call trace_overhead.py uses), taking turns
    for n in (16, 64, 128, 512):
        text = text_of_length(tok, n)
        inputs = tok(text, return_tensors="pt")

        def bare(inputs: Any = inputs) -> Any:
            with torch.inference_mode():
                return handle.model(**inputs, output_attentions=True)

        t = attnscope.trace(handle, text, values=True)
        got = interleaved(
            {
                "bare": bare,
                "trace_values": lambda text=text: attnscope.trace(handle, text, values=True),
                "norms": lambda t=t: (contrib.norms(t), contrib.norms_summed(t)),
                "mixing": lambda t=t: contrib.mixing_ratio(t),  # computes mixing too
            },
            repeats,
        )
        out[f"measures_{n}"] = {f"{k}_ms": 1000 * wall for k, (wall, _) in got.items()}
        out[f"measures_{n}"] |= {f"{k}_cpu_ms": 1000 * cpu for k, (_, cpu) in got.items()}
        if n <= 64:
            for name, fn in (("value_zeroing", contrib.value_zeroing), ("gradient_x_input", contrib.gradient_x_input)):
                wall, cpu = interleaved({name: lambda t=t, fn=fn: fn(handle, t)}, max(1, repeats // 5))[name]
                out[f"measures_{n}"] |= {f"{name}_ms": 1000 * wall, f"{name}_cpu_ms": 1000 * cpu}
    return out


# -- report -----------------------------------------------------------------------------------------


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


def pair(m: dict[str, float], key: str) -> str:
    return f"{m[key + '_ms']:.1f} / {m[key + '_cpu_ms']:.1f}"


def ratio(m: dict[str, float], key: str) -> str:
    return f"{m[key + '_ms'] / m['bare_ms']:.2f}x / {m[key + '_cpu_ms'] / m['bare_cpu_ms']:.2f}x"


def cost(m: dict[str, float], key: str) -> str:
    """A rerunning measure's wall time and its multiple of a bare forward pass (CPU), or '-' if not measured."""
    if key + "_ms" not in m:
        return "-"
    return f"{m[key + '_ms']:.0f} ms ({m[key + '_cpu_ms'] / m['bare_cpu_ms']:.0f}x)"


def report(faith: dict[str, Any] | None, perf: dict[str, Any] | None, args: argparse.Namespace) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        f"model: all-MiniLM-L6-v2 on cpu, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"commit {commit.strip()}; 1-minute load average {os.getloadavg()[0]:.1f}",
        "",
    ]
    if faith is not None:
        if "measured" in faith:
            lines += [f"Faithfulness: not rerun; the numbers of the run of {faith['measured']}.", ""]
        lines += [
            f"Faithfulness over {faith['sentences']} EWT dev sentences (limit {args.limit}; skipped "
            f"{faith['skipped']}; median {faith['tokens_median']} tokens, longest {faith['tokens_max']}); "
            f"{faith['wall_seconds']:.0f} s.",
            "Spearman rho with leave-one-token-out importance, mean [95% interval] (n sentences):",
            "",
            "| measure | vs token removed | vs token masked |",
            "|---|---:|---:|",
        ]
        order = sorted(MEASURES, key=lambda m: -faith["rho"]["removed"][m][0])
        for m in order:
            cells = []
            for ref in ("removed", "masked"):
                mean, lo, hi, n = faith["rho"][ref][m]
                cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}] ({n})")
            lines.append(f"| {m} | {cells[0]} | {cells[1]} |")
        lines += [
            "",
            "Median seconds per sentence: "
            + ", ".join(f"{k} {v:.3f}" for k, v in faith["seconds_per_sentence"].items()),
            "",
        ]
    if perf is not None:
        f64 = perf["flow_64"]
        lines += [
            "Performance (medians):",
            "",
            "| target | measured | met |",
            "|---|---:|:---:|",
            f"| rollout at 512 tokens (6x12) <= 50 ms | {perf['rollout_512_ms']:.1f} ms (CPU "
            f"{perf['rollout_512_cpu_ms']:.1f} ms) | {yes(perf['rollout_512_ms'] <= 50)} |",
            f"| flow, all pairs at 64 tokens <= 5 s | {f64['ours_s']:.2f} s | {yes(f64['ours_s'] <= 5)} |",
            f"| flow >= 50x faster than networkx at 64 tokens | {f64['speedup']:.0f}x (reference "
            f"{f64['reference_s']:.0f} s, {f64['reference_measured']} timed) | {yes(f64['speedup'] >= 50)} |",
        ]
        for n in (16, 64):
            f = perf[f"flow_{n}"]
            lines.append(
                f"| flow equals the reference within 1e-6 at {n} tokens ({f['reference_measured']}) | "
                f"max diff {f['max_abs_diff']:.1e} | {yes(f['max_abs_diff'] <= 1e-6)} |"
            )
        lines += [
            "",
            "Wall ms / CPU ms (medians, taking turns); ratios to the bare forward pass, wall / CPU:",
            "",
            "| tokens | bare forward | trace(values=True) | norms + norms_summed | ratio | mixing_ratio (+ mixing) | "
            "ratio | value zeroing | gradient x input |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in (16, 64, 128, 512):
            m = perf[f"measures_{n}"]
            lines.append(
                f"| {n} | {pair(m, 'bare')} | {pair(m, 'trace_values')} | {pair(m, 'norms')} | {ratio(m, 'norms')} | "
                f"{pair(m, 'mixing')} | {ratio(m, 'mixing')} | {cost(m, 'value_zeroing')} | "
                f"{cost(m, 'gradient_x_input')} |"
            )
    return "\n".join(lines)


def earlier_faithfulness() -> dict[str, Any]:
    """The faithfulness part of the results file, with when and at which commit it was measured."""
    text = RESULTS.read_text(encoding="utf-8")
    raw = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    faith: dict[str, Any] = raw["faithfulness"]
    if "measured" not in faith:
        when = re.search(r"Measured (.+?) with", text)
        commit = re.search(r"commit (\w+);", text)
        faith["measured"] = f"{when.group(1) if when else '?'}, commit {commit.group(1) if commit else '?'}"
    return faith


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500, help="EWT dev sentences (default 500)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per performance figure")
    parser.add_argument("--no-perf", action="store_true", help="skip the performance part")
    parser.add_argument("--no-faith", action="store_true", help="skip the faithfulness part")
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {RESULTS.name}")
    parser.add_argument(
        "--keep-faith",
        action="store_true",
        help=f"with --no-faith: keep the faithfulness part of the existing {RESULTS.name}, labelled with its run",
    )
    args = parser.parse_args()
    handle = attnscope.load(device="cpu")
    faith = None if args.no_faith else faithfulness(handle, args.limit)
    if faith is None and args.keep_faith:
        faith = earlier_faithfulness()
    perf = None if args.no_perf else performance(handle, args.repeats)
    text = report(faith, perf, args)
    print(text)
    if not args.no_write:
        raw = json.dumps({"faithfulness": faith, "performance": perf}, indent=1, default=float)
        body = (
            f"# Contribution measures: faithfulness and speed (issue 9)\n\nMeasured "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `.venv/bin/python benchmarks/faithfulness.py "
            f"{' '.join(sys.argv[1:])}`.\n\n```\n{text}\n```\n\nRaw numbers:\n\n```json\n{raw}\n```\n"
        )
        tmp = RESULTS.with_suffix(".md.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, RESULTS)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
