"""attnscope's views against BertViz 1.4.1: page bytes, Python time, time to render, hover and layer repaint.

Both tools get the same input: the embedded all-MiniLM-L6-v2 (6 layers x 12 heads) on one sentence
of exactly N tokens (``--pair``: a sentence pair, for which BertViz writes every number twice), traced
once (the forward pass is not timed), then given to each tool in BertViz's call shape
``head_view(attention, tokens, sentence_b_start)``. The neuron view takes the model itself
in both tools, so its Python time includes one forward pass on both sides (BertViz's vendored 2019 BERT
with MiniLM's weights, checked first to give the same tokens and attention as attnscope's trace).

BertViz pages load require.js, d3 and jQuery from cdnjs; offline, this script installs the matching npm
packages into a cache folder (outside the repository) and serves them through Playwright request
routing. Every other request is refused and counted. Pages are opened from files in Debian's chromium.

Definitions (all times measured inside the page with performance.now()):
- rendered: navigation start until the frame after the view is drawn (BertViz: its SVG exists, checked
  afterwards to hold every line; attnscope: the root's data-attnscope-state is "ready"), found by a
  requestAnimationFrame poll; the time is taken in a setTimeout queued from that frame, i.e. after paint.
- hover / layer: from dispatching mouseover (BertViz) or mousemove (attnscope) on a left-hand token,
  or a change event on the layer <select>, to the same after-paint point of the next frame; the median
  of 5 hovers (after one untimed warm-up hover) and of 3 layer changes.

Usage: .venv/bin/python benchmarks/views_vs_bertviz.py [--quick] [--sizes 16,64] [--views neuron] [--timeout 90]
[--no-long] [--no-write] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "views_vs_bertviz.md"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# cdnjs URL (as BertViz 1.4.1 writes it) -> (npm package@version, file in the package).
# jQuery 2.0.0 was never published to npm; 2.1.0 is the first 2.x there, and BertViz uses only
# $(selector), .append, .val, .on, .empty and .attr, which it has unchanged.
CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"
CDN = {
    CDNJS + "require.js/2.3.6/require.min.js": ("requirejs@2.3.6", "requirejs/require.js"),
    CDNJS + "d3/5.7.0/d3.min.js": ("d3@5.7.0", "d3/dist/d3.min.js"),
    CDNJS + "jquery/2.0.0/jquery.min.js": ("jquery@2.1.0", "jquery/dist/jquery.min.js"),
}
SIZES = (16, 64, 128, 256, 512)
VIEWS = ("head", "model", "neuron")
QUICK_SIZES = (16, 64)
LONG_TOKENS = 4096
# A passage of words that are one WordPiece token each, so a pair of exactly N tokens is easy to build.
PASSAGE = "the cat is very sad because it could not find food to eat and the dog was happy when the sun came up"
TARGETS = [
    "512 tokens: attnscope page <= 1/100 of BertViz's bytes",
    "512 tokens: attnscope Python time <= 1/20 of BertViz's",
    "512 tokens: attnscope rendered <= 1 s",
    "256 tokens: head view hover -> repaint <= 50 ms",
    "256 tokens: head view layer change -> repaint <= 50 ms",
    "4,096 tokens (tiny decoder): model and head view rendered <= 3 s",
]

# In-page code. The poll runs once per frame; it only reads cheap DOM facts (the draw is synchronous).
POLL = """(() => {
  const done = () => { %s };
  const poll = () => {
    let ok = false;
    try { ok = done(); } catch (e) {}
    if (ok) { setTimeout(() => { window.__renderedAt = performance.now(); }, 0); return; }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();"""
RENDERED = {
    "bertviz-head": "return !!document.querySelector('#vis svg #attention')",
    "bertviz-model": "return !!document.querySelector('#vis svg line')",
    "bertviz-neuron": "return !!document.querySelector('#vis svg #collapsed')",
    "attnscope": "return !!document.querySelector('.attnscope-root[data-attnscope-state=ready]')",
}
# Elements drawn, counted once after rendering (untimed), to show the render was complete.
COUNT = {
    "bertviz-head": "document.querySelectorAll('#attention line').length",
    "bertviz-model": "document.querySelectorAll('#vis svg line').length",
    "bertviz-neuron": "document.querySelectorAll('#collapsed line').length",
    "attnscope": "(document.querySelector('.as-headview')?.dataset.lines ?? '-') + ' lines, render() '"
    " + document.querySelector('.attnscope-root').dataset.renderMs + ' ms'",
}
# Dispatch one interaction, wait for the frame after it; return [elapsed ms, event handler ms, check value].
INTERACT = """async ([tool, what, index]) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  await frame();
  let fire, check;
  if (tool === 'bertviz') {
    if (what === 'hover') {
      const tokens = document.querySelectorAll('#left > g:not(.attentionBoxes) > g');
      fire = () => tokens[index].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
      const shown = "#attention line[left-token-index='" + index + "'][visibility=visible]";
      check = () => document.querySelectorAll(shown).length;
    } else {
      const sel = document.querySelector('#layer');
      fire = () => { sel.value = String(index); sel.dispatchEvent(new Event('change', {bubbles: true})); };
      check = () => sel.value;
    }
  } else {
    const view = document.querySelector('.as-headview');
    if (what === 'hover') {
      const canvas = view.querySelector('canvas');
      const box = canvas.getBoundingClientRect();
      const y = box.top + 4 + index * 18 + 9;
      const at = {bubbles: true, clientX: box.left + 3, clientY: y};
      fire = () => canvas.dispatchEvent(new MouseEvent('mousemove', at));
      check = () => view.dataset.hover;
    } else {
      const sel = view.querySelector('select.as-layer');
      fire = () => { sel.value = String(index); sel.dispatchEvent(new Event('change', {bubbles: true})); };
      check = () => view.dataset.layer;
    }
  }
  const t0 = performance.now();
  fire();
  const handled = performance.now() - t0;
  await frame();
  return [performance.now() - t0, handled, String(check())];
}"""


@dataclass
class Measure:
    """One tool's numbers for one view at one size; a time is a float (seconds or ms) or a reason string."""

    bytes: int | None = None
    python_s: float | str | None = None
    rendered_s: float | str | None = None
    hover_ms: float | str | None = None
    layer_ms: float | str | None = None
    handler_ms: dict[str, float] = field(default_factory=dict)  # of hover_ms / layer_ms: the event handler alone
    drawn: str = ""
    requests: int = 0
    errors: list[str] = field(default_factory=list)


# -- inputs ------------------------------------------------------------------------------------------
def input_texts(tokenizer: Any, n: int, pair: bool) -> tuple[str, str | None]:
    """Text (and, for a pair, text B) that MiniLM's tokenizer turns into exactly n tokens with [CLS]/[SEP]."""
    words = [w for w in PASSAGE.split() if len(tokenizer.tokenize(w)) == 1]
    body = [words[i % len(words)] for i in range(n - (3 if pair else 2))]
    if not pair:
        return " ".join(body), None
    half = len(body) // 2
    return " ".join(body[:half]), " ".join(body[half:])


def best_time(make: Callable[[], str], repeats: int = 3, budget_s: float = 10.0) -> tuple[float, str]:
    """Fastest of up to 3 runs (fewer once they have taken budget_s in all); returns (seconds, page)."""
    best, page, spent = float("inf"), "", 0.0
    for _ in range(repeats):
        page = ""  # free the previous page before making the next (BertViz's reach hundreds of MB)
        start = time.perf_counter()
        page = make()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent + elapsed > budget_s:
            break
    return best, page


# -- offline BertViz ---------------------------------------------------------------------------------
def ensure_cdn_files(prefix: Path) -> dict[str, Path]:
    """The npm files that stand in for BertViz's CDN scripts, installed with npm if missing."""
    check_bertviz_urls()
    files = {url: prefix / "node_modules" / rel for url, (_, rel) in CDN.items()}
    if not all(f.is_file() for f in files.values()):
        print(f"installing {', '.join(spec for spec, _ in CDN.values())} into {prefix} (npm)", file=sys.stderr)
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run([*cmd, *(spec for spec, _ in CDN.values())], check=True)
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        sys.exit(f"npm did not provide {missing}")
    return files


def check_bertviz_urls() -> None:
    """Fail loudly if the installed BertViz asks for other CDN URLs than the ones served here."""
    import bertviz

    version = importlib.metadata.version("bertviz")
    package = Path(bertviz.__file__).parent
    found = set()
    for source in [*package.glob("*.js"), *package.glob("*.py")]:
        text = source.read_text(encoding="utf-8")
        found |= set(re.findall(r"https://cdnjs\.cloudflare\.com/[^'\"]+", text))
    wanted = {u if u.endswith(".js") else u + ".js" for u in found}
    if wanted != set(CDN):
        sys.exit(f"BertViz {version} loads {sorted(wanted)}; this script serves {sorted(CDN)}")


def bertviz_neuron_model(model_dir: Path) -> tuple[Any, Any]:
    """MiniLM's weights in BertViz's vendored 2019 BERT (its neuron view accepts only its own classes)."""
    from bertviz.transformers_neuron_view import BertModel, BertTokenizer
    from bertviz.transformers_neuron_view.modeling_bert import BertConfig
    from safetensors.torch import load_file

    config = BertConfig.from_json_file(str(model_dir / "config.json"))
    config.output_attentions = True
    model = BertModel(config)
    missing, unexpected = model.load_state_dict(load_file(str(model_dir / "model.safetensors")), strict=False)
    if missing or set(unexpected) - {"embeddings.position_ids"}:
        sys.exit(f"MiniLM weights do not fit BertViz's BERT: missing {missing}, unexpected {unexpected}")
    return model.eval(), BertTokenizer(str(model_dir / "vocab.txt"), do_lower_case=True)


def check_same_model(neuron_model: tuple[Any, Any], handle: Any) -> None:
    """BertViz's vendored BERT must see the tokens and compute the attention that attnscope traces."""
    import numpy as np
    from bertviz.neuron_view import get_attention

    import attnscope

    text_a, text_b = input_texts(handle.tokenizer, 24, True)
    model, tokenizer = neuron_model
    theirs = get_attention(model, "bert", tokenizer, text_a, text_b)["all"]
    ours = attnscope.trace(handle, text_a, text_b)
    diff = float(np.abs(np.array(theirs["attn"]) - ours.attention["encoder"]).max())
    if theirs["left_text"] != list(ours.tokens.raw) or diff > 1e-4:
        sys.exit(f"BertViz's BERT disagrees with attnscope's trace (tokens or attention, max diff {diff:.2g})")


# -- browser -----------------------------------------------------------------------------------------
class Browser:
    """Debian's chromium via Playwright; CDN URLs served from npm files, every other request refused."""

    def __init__(self, cdn_files: dict[str, Path], timeout_s: float) -> None:
        self.cdn = {url: path.read_bytes() for url, path in cdn_files.items()}
        self.timeout_s = timeout_s
        self._pw: Any = None
        self._browser: Any = None

    async def __aenter__(self) -> Browser:
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._browser.close()
        await self._pw.stop()

    async def measure(self, path: Path, kind: str, out: Measure, interact: str | None, n_layers: int) -> None:
        """Open the page (attnscope's up to 3 times: median); fill rendered_s, drawn, hover and layer times."""
        loads: list[float] = []
        for attempt in range(1 if kind.startswith("bertviz") else 3):
            rendered = await self._load(path, kind, out, interact if attempt == 0 else None, n_layers)
            if not isinstance(rendered, float):
                out.rendered_s = rendered
                return
            loads.append(rendered)
            if rendered > 5:
                break
        out.rendered_s = statistics.median(loads)

    async def _load(self, path: Path, kind: str, out: Measure, interact: str | None, n_layers: int) -> float | str:
        """One fresh page: seconds until rendered (or why not); counts and interactions when asked."""
        context = await self._browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        crashed: list[bool] = []
        page.on("crash", lambda _: crashed.append(True))
        page.on("console", lambda m: m.type == "error" and out.errors.append(m.text[:160]))
        page.on("pageerror", lambda e: out.errors.append(str(e)[:160]))

        async def route(r: Any) -> None:
            url = r.request.url
            if url.startswith("file://"):
                await r.continue_()
            elif url in self.cdn:
                await r.fulfill(status=200, body=self.cdn[url], content_type="application/javascript")
            else:
                out.requests += 1
                await r.abort()

        await page.route("**/*", route)
        await page.add_init_script(POLL % RENDERED[kind])
        rendered: float | str | None = None
        try:
            await page.goto(path.as_uri(), wait_until="commit", timeout=self.timeout_s * 1000)
            rendered = await self._rendered_at(page) / 1000
            out.drawn = str(await asyncio.wait_for(page.evaluate(COUNT[kind]), self.timeout_s))
            if interact:
                out.hover_ms, out.layer_ms = await self._interact(page, interact, n_layers, out)
        except Exception as err:  # timeouts, crashes: report what happened instead of hanging
            out.errors.append(f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}")
            if rendered is None:
                rendered = await self._why_not(page, crashed, err)
            elif interact:
                out.hover_ms = out.hover_ms or "timeout"
                out.layer_ms = out.layer_ms or "timeout"
        finally:
            await context.close()
        return rendered

    async def _rendered_at(self, page: Any) -> float:
        """Poll (from outside, which the pages' CSP allows) for the time the init script recorded."""
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                value = await asyncio.wait_for(page.evaluate("window.__renderedAt ?? null"), left)
            except asyncio.TimeoutError:
                raise TimeoutError(f"not rendered within {self.timeout_s:.0f} s (page busy)") from None
            if value is not None:
                return float(value)
            await asyncio.sleep(0.05)
        raise TimeoutError(f"not rendered within {self.timeout_s:.0f} s")

    async def _interact(self, page: Any, tool: str, n_layers: int, out: Measure) -> tuple[float | str, float | str]:
        results: dict[str, float | str] = {}
        # Hover: one untimed warm-up (token 1), then 5 tokens; layer: 3 changes (BertViz's take long).
        for what, targets in (("hover", (1, 3, 5, 7, 9, 11)), ("layer", (1, 2, 3))):
            times: list[float] = []
            handler: list[float] = []
            for target in [t for t in targets if t < n_layers] if what == "layer" else targets:
                elapsed, handled, check = await asyncio.wait_for(
                    page.evaluate(INTERACT, [tool, what, target]), self.timeout_s
                )
                if not _checked(tool, what, target, check):
                    results[what] = f"unverified ({check})"
                    break
                if what == "layer" or target != targets[0]:
                    times.append(elapsed)
                    handler.append(handled)
            else:
                results[what] = statistics.median(times)
                out.handler_ms[what] = statistics.median(handler)
        return results["hover"], results["layer"]

    async def _why_not(self, page: Any, crashed: list[bool], err: Exception) -> str:
        if crashed:
            return "crash"
        try:
            state = await asyncio.wait_for(page.evaluate("document.readyState"), 5)
        except Exception:
            return "timeout"
        return "blank" if state == "complete" else f"timeout ({type(err).__name__})"


def _checked(tool: str, what: str, target: int, check: str) -> bool:
    """Whether the interaction did what it should (the hovered token's lines shown, the layer switched)."""
    if what == "layer":
        return check == str(target)
    if tool == "attnscope":
        return check == f"q{target}"
    return int(check) > 0


# -- the runs ----------------------------------------------------------------------------------------
async def run_size(
    n: int, pair: bool, handle: Any, neuron_model: Any, browser: Browser, work: Path, only: tuple[str, ...] = VIEWS
) -> dict[str, dict[str, Any]]:
    """The views in ``only`` (default every view) of both tools at n tokens."""
    import bertviz
    import torch
    from bertviz import neuron_view as bertviz_neuron

    import attnscope
    from attnscope import views

    text_a, text_b = input_texts(handle.tokenizer, n, pair)
    trace = attnscope.trace(handle, text_a, text_b)
    assert len(trace.tokens) == n, (len(trace.tokens), n)
    attention = tuple(torch.from_numpy(layer[None]) for layer in trace.attention["encoder"])
    tokens, b_start = list(trace.tokens.raw), trace.tokens.sentence_b_start
    n_layers = len(attention)
    bv_model, bv_tokenizer = neuron_model
    out: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[str, str, Callable[[], str], Callable[[], str]]] = [
        (
            "head",
            "bertviz-head",
            lambda: bertviz.head_view(attention, tokens, b_start, html_action="return").data,
            lambda: views.head_view(attention, tokens, b_start).to_html(),
        ),
        (
            "model",
            "bertviz-model",
            lambda: bertviz.model_view(attention, tokens, b_start, html_action="return").data,
            lambda: views.model_view(attention, tokens, b_start).to_html(),
        ),
        (
            "neuron",
            "bertviz-neuron",
            lambda: bertviz_neuron.show(bv_model, "bert", bv_tokenizer, text_a, text_b, html_action="return").data,
            lambda: views.neuron_view(handle.model, handle.tokenizer, text_a, text_b).to_html(),
        ),
    ]
    for view, bertviz_kind, make_bertviz, make_attnscope in [job for job in jobs if job[0] in only]:
        row = out.setdefault(view, {})
        for tool, kind, make in (("bertviz", bertviz_kind, make_bertviz), ("attnscope", "attnscope", make_attnscope)):
            m = Measure()
            seconds, html = best_time(make)
            m.python_s, m.bytes = seconds, len(html.encode("utf-8"))
            path = work / f"{tool}-{view}-{n}.html"
            path.write_text(html, encoding="utf-8")
            del html
            print(f"  {n:>4} tokens {view:<6} {tool:<9} {m.bytes:>12,d} B  python {seconds:8.3f} s", file=sys.stderr)
            await browser.measure(path, kind, m, tool if view == "head" else None, n_layers)
            path.unlink()
            row[tool] = asdict(m)
            print(f"       rendered {fmt(m.rendered_s, 's')}  hover {fmt(m.hover_ms, 'ms')}  layer "
                  f"{fmt(m.layer_ms, 'ms')}  drawn {m.drawn}  {'; '.join(m.errors[:1])}", file=sys.stderr)  # fmt: skip
    return out


async def run_long(browser: Browser, work: Path) -> dict[str, Any]:
    """A 4,096-token input to a tiny random decoder (2 layers, 4 heads): model and head view."""
    import torch
    import transformers

    from attnscope import Trace, views
    from attnscope.loading import default_model_path

    config = transformers.LlamaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=LONG_TOKENS,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(default_model_path())
    ids = torch.randint(1000, 30000, (1, LONG_TOKENS))
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    trace = Trace.from_attentions(attentions, tokens, model_name="tiny random LLaMA (2 layers x 4 heads)")
    result: dict[str, Any] = {}
    for view, make in (("model", views.model_view), ("head", views.head_view)):
        m = Measure()
        seconds, html = best_time(lambda make=make: make(trace).to_html())  # type: ignore[misc]
        m.python_s, m.bytes = seconds, len(html.encode("utf-8"))
        path = work / f"attnscope-long-{view}.html"
        path.write_text(html, encoding="utf-8")
        del html
        await browser.measure(path, "attnscope", m, "attnscope" if view == "head" else None, 2)
        path.unlink()
        result[view] = asdict(m)
        print(f"  {LONG_TOKENS} tokens {view:<6} attnscope {m.bytes:>12,d} B  python {seconds:.3f} s  rendered "
              f"{fmt(m.rendered_s, 's')}  hover {fmt(m.hover_ms, 'ms')}", file=sys.stderr)  # fmt: skip
    return result


# -- report ------------------------------------------------------------------------------------------
def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "B":
        return f"{value / 1e6:.2f} MB" if value >= 1e5 else f"{value / 1e3:.1f} kB"
    return str(value)


def react(m: dict[str, Any], what: str) -> str:
    """An interaction's time to repaint, with its event handler's share in brackets."""
    text = fmt(m[f"{what}_ms"], "ms")
    handler = m["handler_ms"].get(what)
    return f"{text} ({handler:.1f})" if handler is not None and not isinstance(m[f"{what}_ms"], str) else text


def ratio(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        if a < b:
            return f"1/{b / a:.0f}" if b / a >= 10 else f"1/{b / a:.1f}"
        return f"{a / b:.1f}x"
    return "-"


def tables(results: dict[int, dict[str, dict[str, Any]]], long: dict[str, Any] | None, pair: bool) -> str:
    lines = []
    for view in [v for v in VIEWS if any(v in per_view for per_view in results.values())]:
        lines += [f"\n### {view} view (MiniLM, {'sentence pair' if pair else 'one sentence'})\n"]
        head = ["tokens", "BertViz bytes", "attnscope bytes", "size", "BertViz Python", "attnscope Python", "time",
                "BertViz rendered", "attnscope rendered"]  # fmt: skip
        if view == "head":
            head += ["BertViz hover", "attnscope hover", "BertViz layer", "attnscope layer"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for n, per_view in results.items():
            b, a = per_view[view]["bertviz"], per_view[view]["attnscope"]
            cells = [str(n), fmt(b["bytes"], "B"), fmt(a["bytes"], "B"), ratio(a["bytes"], b["bytes"]),
                     fmt(b["python_s"], "s"), fmt(a["python_s"], "s"), ratio(a["python_s"], b["python_s"]),
                     fmt(b["rendered_s"], "s"), fmt(a["rendered_s"], "s")]  # fmt: skip
            if view == "head":
                cells += [react(b, "hover"), react(a, "hover"), react(b, "layer"), react(a, "layer")]
            lines.append("| " + " | ".join(cells) + " |")
    if long:
        lines += [f"\n### {LONG_TOKENS:,} tokens, tiny random LLaMA decoder (2 layers x 4 heads), attnscope only\n",
                  "| view | bytes | Python | rendered | hover | layer |", "|---|---|---|---|---|---|"]  # fmt: skip
        for view, m in long.items():
            cells = [view, fmt(m["bytes"], "B"), fmt(m["python_s"], "s"), fmt(m["rendered_s"], "s"),
                     react(m, "hover"), react(m, "layer")]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(results: dict[int, dict[str, dict[str, Any]]], long: dict[str, Any] | None) -> str:
    """Each target with the measured value and whether it is met (- when not measured in this run)."""

    def num(x: Any) -> float | None:
        return float(x) if isinstance(x, (int, float)) else None

    rows = []
    big, mid = results.get(512), results.get(256)
    for i, text in enumerate(TARGETS):
        verdicts = []
        for view in VIEWS:
            if i < 3 and big and view in big:
                b, a = big[view]["bertviz"], big[view]["attnscope"]
                key = ("bytes", "python_s", "rendered_s")[i]
                av, bv = num(a[key]), num(b[key])
                if i == 2:
                    ok = av is not None and av <= 1.0
                    verdicts.append(f"{view}: {fmt(a[key], 's')} {'met' if ok else 'MISSED'}")
                elif av is not None:
                    # BertViz's value stands when it produced its page (its Python side always finishes).
                    ok = bv is not None and av * (100 if i == 0 else 20) <= bv
                    verdicts.append(f"{view}: {ratio(av, bv)} {'met' if ok else 'MISSED'}")
            if i in (3, 4) and mid and view == "head" and "head" in mid:
                value = mid["head"]["attnscope"]["hover_ms" if i == 3 else "layer_ms"]
                ok = num(value) is not None and num(value) <= 50  # type: ignore[operator]
                verdicts.append(f"{fmt(value, 'ms')} {'met' if ok else 'MISSED'}")
        if i == 5 and long:
            for view, m in long.items():
                ok = num(m["rendered_s"]) is not None and m["rendered_s"] <= 3.0
                verdicts.append(f"{view}: {fmt(m['rendered_s'], 's')} {'met' if ok else 'MISSED'}")
        rows.append(f"- {text}: {', '.join(verdicts) if verdicts else 'not measured in this run'}")
    return "\n".join(rows)


def environment() -> str:
    import torch

    import attnscope

    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "src", "frontend"], capture_output=True, text=True).stdout
    commit += " + uncommitted changes" if dirty else ""
    return (f"attnscope {attnscope.__version__} (commit {commit}), BertViz {importlib.metadata.version('bertviz')}, "
            f"torch {torch.__version__}, Python {platform.python_version()}, {chromium}, "
            f"Playwright {importlib.metadata.version('playwright')}, {os.cpu_count()} CPUs, "
            f"1-minute load average {os.getloadavg()[0]:.1f} when the results were written")  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    import attnscope
    from attnscope.loading import default_model_path

    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    only = tuple(v.strip() for v in args.views.split(","))
    if not set(only) <= set(VIEWS):
        sys.exit(f"--views takes {','.join(VIEWS)}, got {args.views}")
    cdn_files = ensure_cdn_files(Path(args.npm_prefix))
    handle = attnscope.load(device="cpu")
    neuron_model = bertviz_neuron_model(Path(default_model_path()))
    check_same_model(neuron_model, handle)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    long: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="attnscope-bench-") as tmp:
        async with Browser(cdn_files, args.timeout) as browser:
            for n in sizes:
                results[n] = await run_size(n, args.pair, handle, neuron_model, browser, Path(tmp), only)
            if not args.no_long:
                long = await run_long(browser, Path(tmp))
    table = tables(results, long, args.pair)
    targets = target_lines(results, long)
    print(table)
    print("\nTargets:\n" + targets)
    if args.write:
        write_results(args, table, targets, results, long)
    if args.json:
        raw = json.dumps({"sizes": results, "long": long}, indent=1, default=str)
        Path(args.json).write_text(raw, encoding="utf-8")


def write_results(args: argparse.Namespace, table: str, targets: str, results: Any, long: Any) -> None:
    command = "benchmarks/views_vs_bertviz.py " + " ".join(sys.argv[1:])
    text = f"""# attnscope views vs BertViz 1.4.1

Measured {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} with `.venv/bin/python {command.strip()}`.
{environment()}.

Input: all-MiniLM-L6-v2 (6 layers x 12 heads) on {"a sentence pair" if args.pair else "one sentence"} of
exactly N tokens; both tools get the same attention tuple and tokens (BertViz's call shape). Python time
excludes the forward pass, except in
the neuron view, where both tools take the model and run it once. Each BertViz browser step is capped at
{args.timeout:.0f} s: "timeout" means still not drawn then, "blank" means the page finished loading
but nothing was drawn, "crash" means the renderer process died. BertViz's CDN scripts are served from
npm packages (jQuery 2.1.0 stands in for 2.0.0, which is not on npm). Definitions of "rendered", "hover"
and "layer" are in the script's docstring; hover and layer cells read "time to the painted frame (time
spent in the event handler)", medians of 5 hovers and 3 layer changes. Ratios: "1/N" = attnscope is N
times smaller or faster.
{table}

## Targets

{targets}

## Raw numbers

```json
{json.dumps({"sizes": results, "long": long}, indent=1, default=str)}
```
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="token counts (default 16,64,128,256,512)")
    parser.add_argument("--views", default=",".join(VIEWS), help="views to measure (default head,model,neuron)")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_SIZES}, for a fast check")
    parser.add_argument("--timeout", type=float, default=90.0, help="cap per browser step, seconds (default 90)")
    parser.add_argument("--pair", action="store_true", help="a sentence pair (BertViz's page doubles) instead of one")
    parser.add_argument("--no-long", action="store_true", help=f"skip the {LONG_TOKENS}-token tiny decoder")
    parser.add_argument("--no-write", dest="write", action="store_false", help=f"do not write {RESULTS.name}")
    parser.add_argument("--json", help="also write the raw numbers to this JSON file")
    parser.add_argument(
        "--npm-prefix",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "attnscope-benchmarks" / "npm"),
        help="where the npm stand-ins for BertViz's CDN scripts are installed (outside the repository)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import bertviz  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as err:
        sys.exit(f"{err.name} is missing: .venv/bin/pip install -e '.[benchmarks,dev]'")
    if not Path(CHROMIUM).exists():
        sys.exit(f"no chromium at {CHROMIUM}: sudo apt-get install chromium")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
