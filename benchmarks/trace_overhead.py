"""How much does tracing cost over a bare forward pass? (issue 2's speed targets)

Compares, in one run on the embedded MiniLM (CPU unless CUDA is present):
  1. attnscope.trace(...) (tokenize, forward, copy attention out) vs a bare
     ``model(**inputs, output_attentions=True)`` on ready inputs at 16..512 tokens (target <= 1.10x), and
     trace(..., qk=True) capturing queries and keys of all heads (target <= 1.30x);
  2. attnscope.trace_many(...) vs a bare batched loop (tokenize with padding + forward) over the first
     500 sentences of ../shared/data/ud-ewt/en_ewt-uds-dev.conllu (target <= 1.15x).
The contenders take turns call by call, so drift on a shared machine hits all alike; wall and CPU
time are both reported.

Run: .venv/bin/python benchmarks/trace_overhead.py [--repeats N] [--sentences N] [--batch-size B]
"""

from __future__ import annotations

import argparse
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


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Medians of wall and CPU time, the contenders taking turns call by call (after one warm-up each).

    CPU time is the steadier figure on a shared machine: other processes delay a call's wall time, not
    the work it does.
    """
    for fn in fns.values():
        fn()
    samples: dict[str, list[Timing]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed(fn))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in samples.items()}


def ratio(got: dict[str, Timing], name: str, base: str = "bare") -> str:
    return f"{got[name][0] / got[base][0]:.3f} / {got[name][1] / got[base][1]:.3f}"


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

    print("\nTimes are medians in ms, wall / CPU; ratios are wall / CPU.")
    print("\n| tokens | bare forward | trace | ratio (<= 1.10) | trace + q/k | ratio (<= 1.30) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (16, 64, 128, 256, 512):
        text = text_of_length(tok, n)
        inputs = tok(text, return_tensors="pt").to(handle.device)

        def bare(inputs: object = inputs) -> object:
            with torch.inference_mode():
                return model(**inputs, output_attentions=True)  # type: ignore[operator]

        fns: dict[str, Callable[[], object]] = {
            "bare": bare,
            "trace": lambda t=text: attnscope.trace(handle, t),
            "qk": lambda t=text: attnscope.trace(handle, t, qk=True),
        }
        got = interleaved(fns, args.repeats if n <= 128 else max(5, args.repeats // 3))
        ms = {k: f"{w * 1e3:.1f} / {c * 1e3:.1f}" for k, (w, c) in got.items()}
        print(f"| {n} | {ms['bare']} | {ms['trace']} | {ratio(got, 'trace')} | {ms['qk']} | {ratio(got, 'qk')} |")

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

    by_length = sorted(sentences, key=lambda t: len(tok(t)["input_ids"]))

    def bare_sorted() -> None:
        for i in range(0, len(by_length), bs):
            enc = tok(by_length[i : i + bs], padding=True, return_tensors="pt").to(handle.device)
            with torch.inference_mode():
                model(**enc, output_attentions=True)

    def traced_batched() -> None:
        for _ in attnscope.trace_many(handle, sentences, batch_size=bs, progress=False):
            pass

    got = interleaved({"bare": bare_batched, "sorted": bare_sorted, "trace_many": traced_batched}, repeats=3)
    print(f"\n{len(sentences)} EWT dev sentences, batch size {bs} (seconds, wall / CPU):")
    print("trace_many groups texts of similar length; the second ratio is against a bare loop sorted the same way.")
    print("| bare batched loop | bare loop, length-sorted | trace_many | ratio (<= 1.15) | ratio vs sorted |")
    print("|---:|---:|---:|---:|---:|")
    cells = {k: f"{w:.2f} / {c:.2f}" for k, (w, c) in got.items()}
    print(
        f"| {cells['bare']} | {cells['sorted']} | {cells['trace_many']} | {ratio(got, 'trace_many')} | "
        f"{ratio(got, 'trace_many', 'sorted')} |"
    )


if __name__ == "__main__":
    main()
