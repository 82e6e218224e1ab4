"""How much does tracing cost over a bare forward pass? (issue 2's speed targets)

Compares, in one run on the embedded MiniLM (CPU unless CUDA is present):
  1. attnscope.trace(...) vs a bare ``model(**inputs, output_attentions=True)`` at 16..512 tokens
     (target <= 1.10x), and trace(..., qk=True) capturing queries and keys of all heads (target <= 1.30x);
  2. attnscope.trace_many(...) vs a bare batched loop (tokenize with padding + forward) over the first
     500 sentences of ../shared/data/ud-ewt/en_ewt-uds-dev.conllu (target <= 1.15x).
Timings are medians over interleaved repeats, so drift on a shared machine hits both sides alike.

Run: .venv/bin/python benchmarks/trace_overhead.py [--repeats N] [--sentences N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import attnscope

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-ewt" / "en_ewt-uds-dev.conllu"
WORDS = "the cat sat on the mat because it could not find any food to eat today".split()  # noqa: SIM905


def text_of_length(tokenizer: object, n_tokens: int) -> str:
    """A text that MiniLM's tokenizer turns into exactly n_tokens tokens ([CLS] and [SEP] included)."""
    words = [WORDS[i % len(WORDS)] for i in range(n_tokens - 2)]
    text = " ".join(words)
    assert len(tokenizer(text)["input_ids"]) == n_tokens  # type: ignore[operator]
    return text


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, rounds: int = 5) -> dict[str, float]:
    """Median of per-round medians, alternating the contenders round by round."""
    for fn in fns.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_time(fn, max(1, repeats // rounds)))
    return {k: statistics.median(v) for k, v in samples.items()}


def dev_sentences(limit: int) -> list[str]:
    sentences: list[str] = []
    words: list[str] = []
    with DEV.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                if words:
                    sentences.append(" ".join(words))
                    words = []
                    if len(sentences) == limit:
                        break
            elif not line.startswith("#"):
                cols = line.split("\t")
                if cols[0].isdigit():
                    words.append(cols[1])
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per contender and length")
    parser.add_argument("--sentences", type=int, default=500, help="EWT dev sentences for the batched comparison")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    handle = attnscope.load()
    model, tok = handle.model, handle.tokenizer
    print(f"model: {handle.name} on {handle.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    has_qk = importlib.util.find_spec("attnscope.qk") is not None

    print("\n| tokens | bare forward (ms) | trace (ms) | ratio (<= 1.10) | trace+qk (ms) | ratio (<= 1.30) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (16, 64, 128, 256, 512):
        text = text_of_length(tok, n)
        inputs = tok(text, return_tensors="pt").to(handle.device)

        def bare(inputs: object = inputs) -> object:
            with torch.inference_mode():
                return model(**inputs, output_attentions=True)  # type: ignore[operator]

        fns: dict[str, Callable[[], object]] = {"bare": bare, "trace": lambda t=text: attnscope.trace(handle, t)}
        if has_qk:
            fns["qk"] = lambda t=text: attnscope.trace(handle, t, qk=True)
        repeats = args.repeats if n <= 128 else max(5, args.repeats // 3)
        got = interleaved(fns, repeats)
        qk_cells = f"{got['qk'] * 1e3:.2f} | {got['qk'] / got['bare']:.3f}" if has_qk else "n/a (no q/k module) | n/a"
        print(
            f"| {n} | {got['bare'] * 1e3:.2f} | {got['trace'] * 1e3:.2f} | {got['trace'] / got['bare']:.3f} | "
            f"{qk_cells} |"
        )

    if not DEV.is_file():
        print(f"\nskipping the batched comparison: {DEV} not found")
        return
    sentences = dev_sentences(args.sentences)
    bs = args.batch_size

    def bare_batched() -> None:
        for i in range(0, len(sentences), bs):
            enc = tok(sentences[i : i + bs], padding=True, return_tensors="pt").to(handle.device)
            with torch.inference_mode():
                model(**enc, output_attentions=True)

    def traced_batched() -> None:
        for _ in attnscope.trace_many(handle, sentences, batch_size=bs, progress=False):
            pass

    got = interleaved({"bare": bare_batched, "trace_many": traced_batched}, repeats=3, rounds=3)
    print(f"\n{len(sentences)} EWT dev sentences, batch size {bs}:")
    print("| bare batched loop (s) | trace_many (s) | ratio (<= 1.15) |")
    print("|---:|---:|---:|")
    print(f"| {got['bare']:.2f} | {got['trace_many']:.2f} | {got['trace_many'] / got['bare']:.3f} |")


if __name__ == "__main__":
    main()
