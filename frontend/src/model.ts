// Model view: every layer x head as a small line drawing; click one to open it large with hover.

import { el, fill, headColor, select, sizeCanvas, cssVar } from "./dom";
import { HIDDEN_NOTE, HeadView, range } from "./head";
import { PageState, Stack } from "./state";

const THUMB = 84;
const BINS = 42; // longer inputs are drawn as lines between groups of consecutive tokens
const LEVELS = 32; // opacity steps

export class ModelView {
  readonly node: HTMLElement;
  private stackName: string;
  private layers: Set<number>;
  private heads: Set<number>;
  private readonly bar: HTMLDivElement;
  private readonly toggles: HTMLDivElement;
  private readonly note: HTMLDivElement;
  private readonly detail: HTMLDivElement;
  private readonly grid: HTMLDivElement;
  private stackSel: HTMLSelectElement | null = null;
  private open: [number, number] | null = null;
  private closeDetail: (() => void) | null = null;

  constructor(private readonly state: PageState) {
    const opts = state.payload.options;
    this.stackName = opts.stack;
    this.layers = new Set(opts.include_layers ?? range(this.st.layers));
    this.heads = new Set(opts.include_heads ?? range(this.st.heads));
    this.node = el("div", "as-modelview");
    this.node.dataset.view = "model";
    this.bar = el("div", "as-bar", undefined, this.node);
    this.toggles = el("div", "as-bar as-toggles", undefined, this.node);
    this.note = el("div", "as-note", undefined, this.node);
    this.detail = el("div", "as-detail", undefined, this.node);
    this.detail.style.display = "none";
    this.grid = el("div", "as-grid", undefined, this.node);
    if (state.stacks.length > 1) {
      this.stackSel = select(this.bar, "Attention", "as-stack", (v) => {
        this.stackName = v;
        this.layers = new Set(range(this.st.layers));
        this.heads = new Set(range(this.st.heads));
        this.showDetail(null);
        this.draw();
      });
    }
    el("span", "as-note", "Click a head to open it large; hover its tokens there.", this.bar);
    state.subscribe(() => this.draw());
    this.draw();
  }

  private get st(): Stack {
    return this.state.stack(this.stackName);
  }

  private buildToggles(): void {
    const st = this.st;
    this.toggles.replaceChildren();
    const group = (name: string, n: number, set: Set<number>, cls: string) => {
      el("span", undefined, `${name}:`, this.toggles);
      const box = el("span", cls, undefined, this.toggles);
      for (let i = 0; i < n; i++) {
        const b = el("button", undefined, this.state.label(i), box);
        b.dataset.index = String(i);
        b.title = `show or hide ${name.toLowerCase().replace(/s$/, "")} ${this.state.label(i)}`;
        b.setAttribute("aria-pressed", String(set.has(i)));
        b.addEventListener("click", () => {
          if (set.has(i)) set.delete(i);
          else set.add(i);
          this.draw();
        });
      }
    };
    group("Layers", st.layers, this.layers, "as-layer-toggles");
    group("Heads", st.heads, this.heads, "as-head-toggles");
  }

  /** Rebuild the grid for the included layers and heads. */
  draw(): void {
    const t0 = performance.now();
    const st = this.st;
    const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
    if (this.stackSel) fill(this.stackSel, this.state.stacks.map((s) => ({ value: s.name, text: cap(s.name) })), this.stackName);
    this.buildToggles();
    this.note.textContent = this.state.hideSpecial ? HIDDEN_NOTE : "";
    const layers = range(st.layers).filter((l) => this.layers.has(l));
    const heads = range(st.heads).filter((h) => this.heads.has(h));
    this.grid.replaceChildren();
    this.grid.style.gridTemplateColumns = `auto repeat(${heads.length}, ${THUMB + 2}px)`;
    el("div", "as-glabel", "", this.grid);
    for (const h of heads) el("div", "as-glabel", `Head ${this.state.label(h)}`, this.grid);
    const fg = cssVar(this.node, "--as-dim");
    let count = 0;
    for (const l of layers) {
      el("div", "as-glabel", `Layer ${this.state.label(l)}`, this.grid);
      for (const h of heads) {
        const c = el("canvas", "as-thumb", undefined, this.grid);
        c.dataset.layer = String(l);
        c.dataset.head = String(h);
        c.title = `layer ${this.state.label(l)}, head ${this.state.label(h)}`;
        thumbnail(c, st, l, h, this.state.hideSpecial, fg);
        c.addEventListener("click", () => this.showDetail([l, h]));
        count++;
      }
    }
    if (this.open) this.showDetail(this.open);
    const ds = this.node.dataset;
    ds.stack = st.name;
    ds.thumbs = String(count);
    ds.layers = layers.join(",");
    ds.heads = heads.join(",");
    ds.drawMs = (performance.now() - t0).toFixed(1);
  }

  private showDetail(which: [number, number] | null): void {
    this.closeDetail?.();
    this.closeDetail = null;
    this.open = which;
    this.detail.replaceChildren();
    this.detail.style.display = which ? "" : "none";
    this.node.dataset.open = which ? which.join(",") : "";
    if (!which) return;
    const [l, h] = which;
    const bar = el("div", "as-bar", undefined, this.detail);
    el("strong", undefined, `Layer ${this.state.label(l)}, head ${this.state.label(h)}`, bar);
    el("button", "as-close", "Close", bar).addEventListener("click", () => this.showDetail(null));
    const view = new HeadView(this.state, { stack: this.stackName, layer: l, heads: [h], controls: false });
    this.detail.appendChild(view.node);
    this.closeDetail = view.dispose;
  }
}

/** Draw one head as lines between two columns of (binned) tokens, opacity = weight. */
function thumbnail(c: HTMLCanvasElement, st: Stack, layer: number, head: number, hide: boolean, fg: string): void {
  const ctx = sizeCanvas(c, THUMB, THUMB);
  const bq = Math.min(st.nq, BINS);
  const bk = Math.min(st.nk, BINS);
  const acc = new Float32Array(bq * bk);
  const counts = new Float32Array(bq);
  const f = st.factors(layer, head, hide);
  const v = st.values;
  const nk = st.nk;
  // Key bin b holds keys [edges[b], edges[b + 1]): floor(k * bk / nk) === b.
  const edges = new Int32Array(bk + 1);
  for (let b = 0; b <= bk; b++) edges[b] = Math.ceil((b * nk) / bk);
  const specials: number[] = [];
  if (hide) for (let k = 0; k < nk; k++) if (st.key.special[k]) specials.push(k);
  for (let q = 0; q < st.nq; q++) {
    if (!f[q]) continue;
    const a = Math.floor((q * bq) / st.nq);
    counts[a]++;
    const base = st.row(layer, head, q);
    const row = a * bk;
    const fq = f[q];
    for (let b = 0; b < bk; b++) {
      let sum = 0;
      const end = base + edges[b + 1];
      for (let i = base + edges[b]; i < end; i++) sum += v[i];
      acc[row + b] += sum * fq;
    }
    for (const k of specials) acc[row + Math.floor((k * bk) / nk)] -= v[base + k] * fq;
  }
  const pad = 4;
  const yq = (i: number) => pad + ((i + 0.5) * (THUMB - 2 * pad)) / bq;
  const yk = (i: number) => pad + ((i + 0.5) * (THUMB - 2 * pad)) / bk;
  ctx.strokeStyle = headColor(head);
  ctx.lineWidth = 1;
  // One path per opacity step: a few strokes per thumbnail instead of one per line.
  const paths: (Path2D | null)[] = new Array(LEVELS).fill(null);
  for (let a = 0; a < bq; a++) {
    if (!counts[a]) continue;
    for (let b = 0; b < bk; b++) {
      const w = acc[a * bk + b] / counts[a];
      if (w < 0.02) continue;
      const level = Math.min(LEVELS - 1, Math.floor(w * LEVELS));
      const path = paths[level] ?? (paths[level] = new Path2D());
      path.moveTo(pad + 6, yq(a));
      path.lineTo(THUMB - pad - 6, yk(b));
    }
  }
  paths.forEach((path, level) => {
    if (!path) return;
    ctx.globalAlpha = (level + 0.5) / LEVELS;
    ctx.stroke(path);
  });
  ctx.globalAlpha = 0.6;
  ctx.fillStyle = fg;
  for (let a = 0; a < bq; a++) ctx.fillRect(pad, yq(a) - 0.5, 5, 1);
  for (let b = 0; b < bk; b++) ctx.fillRect(THUMB - pad - 5, yk(b) - 0.5, 5, 1);
  ctx.globalAlpha = 1;
}
