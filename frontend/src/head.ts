// Head view: tokens on the left attend to tokens on the right; one colour per head, weight as opacity.
// Drawn on one canvas that shows only the rows in view, so thousands of tokens stay fast.

import { cssVar, el, fill, headColor, select, sizeCanvas } from "./dom";
import { PageState, Stack } from "./state";


export interface HeadConfig {
  stack?: string;
  layer?: number;
  heads?: number[];
  controls: boolean;
}

type Filter = "all" | "AA" | "AB" | "BA" | "BB";
interface Hover {
  side: "q" | "k";
  index: number;
}

const ROW = 18;
const GAP = 140;
const MAX_VIEW = 560;
const LEVELS = 32; // opacity steps: lines are batched into one path per head and step
const MIN_WEIGHT = 0.01; // lines fainter than 1% opacity are not drawn

export class HeadView {
  readonly node: HTMLElement;
  private stackName: string;
  private layer: number;
  private heads: Set<number>;
  private filter: Filter = "all";
  private hover: Hover | null = null;
  private readonly canvas: HTMLCanvasElement;
  private readonly scroll: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly note: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly headBox: HTMLDivElement;
  private layerSel: HTMLSelectElement | null = null;
  private stackSel: HTMLSelectElement | null = null;
  private filterSel: HTMLSelectElement | null = null;
  private ctx: CanvasRenderingContext2D | null = null;
  private leftW = 0;
  private rightW = 0;
  private viewH = 0;
  private pending = 0;
  /** Stop following page-wide changes (when a model view closes its large head). */
  readonly dispose: () => void;

  constructor(
    private readonly state: PageState,
    private readonly cfg: HeadConfig,
  ) {
    const opts = state.payload.options;
    this.stackName = cfg.stack ?? opts.stack;
    const st = this.st;
    this.layer = Math.min(cfg.layer ?? opts.layer, st.layers - 1);
    this.heads = new Set(cfg.heads ?? opts.heads ?? range(st.heads));
    this.node = el("div", "as-headview");
    this.node.dataset.view = "head";
    this.bar = el("div", "as-bar", undefined, this.node);
    this.headBox = el("div", "as-heads", undefined, this.node);
    this.note = el("div", "as-note", undefined, this.node);
    this.scroll = el("div", "as-scroll", undefined, this.node);
    this.canvas = el("canvas", "as-sticky", undefined, this.scroll);
    this.spacer = el("div", undefined, undefined, this.scroll);
    this.caption = el("div", "as-caption", "Hover over a token to see only its attention.", this.node);
    this.buildControls();
    this.scroll.addEventListener("scroll", () => this.schedule());
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.dispose = state.subscribe(() => {
      this.relabel();
      this.paint();
    });
    this.layout();
  }

  private get st(): Stack {
    return this.state.stack(this.stackName);
  }

  private buildControls(): void {
    if (!this.cfg.controls) return;
    if (this.state.stacks.length > 1) {
      this.stackSel = select(this.bar, "Attention", "as-stack", (v) => {
        this.stackName = v;
        this.layer = Math.min(this.layer, this.st.layers - 1);
        this.heads = new Set(range(this.st.heads));
        this.hover = null;
        this.layout();
      });
    }
    this.layerSel = select(this.bar, "Layer", "as-layer", (v) => {
      this.layer = Number(v);
      this.paint();
    });
    this.filterSel = select(this.bar, "Sentences", "as-filter", (v) => {
      this.filter = v as Filter;
      this.paint();
    });
    this.relabel();
  }

  private relabel(): void {
    const st = this.st;
    const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
    if (this.stackSel) fill(this.stackSel, this.state.stacks.map((s) => ({ value: s.name, text: cap(s.name) })), this.stackName);
    if (this.layerSel) {
      const only = this.state.payload.options.include_layers;
      const layers = only && st.name === this.state.payload.options.stack ? only : range(st.layers);
      fill(this.layerSel, layers.map((l) => ({ value: String(l), text: this.state.label(l) })), String(this.layer));
    }
    if (this.filterSel) {
      const pair = st.query.segment.includes(1) || st.key.segment.includes(1);
      const choices = [{ value: "all", text: "All" }];
      if (pair) {
        for (const f of ["AA", "AB", "BA", "BB"]) choices.push({ value: f, text: `${f[0]}\u2192${f[1]}` });
      }
      fill(this.filterSel, choices, this.filter);
      this.filterSel.parentElement!.style.display = pair ? "" : "none";
    }
    this.headBox.replaceChildren();
    this.headBox.style.display = this.cfg.controls ? "" : "none";
    for (let h = 0; h < st.heads; h++) {
      const block = el("div", "as-head", this.state.label(h), this.headBox);
      block.style.background = headColor(h);
      block.dataset.head = String(h);
      block.title = `head ${this.state.label(h)}: click toggles, double-click shows only this head`;
      block.setAttribute("aria-pressed", String(this.heads.has(h)));
      block.addEventListener("click", () => {
        if (this.heads.has(h)) this.heads.delete(h);
        else this.heads.add(h);
        this.syncHeads();
      });
      block.addEventListener("dblclick", () => {
        this.heads = new Set([h]);
        this.syncHeads();
      });
    }
    const sides = st.name === "cross" ? "decoder tokens (queries, left) attend to encoder tokens (keys, right)" : "";
    this.note.textContent = [sides, this.state.hideSpecial ? HIDDEN_NOTE : ""].filter(Boolean).join(" \u00b7 ");
  }

  private syncHeads(): void {
    for (const block of Array.from(this.headBox.children) as HTMLElement[]) {
      block.setAttribute("aria-pressed", String(this.heads.has(Number(block.dataset.head))));
    }
    this.paint();
  }

  /** Measure the token columns and size the scroll area (on creation and when the stack changes). */
  private layout(): void {
    const st = this.st;
    const probe = document.createElement("canvas").getContext("2d");
    const width = (labels: string[]) => {
      if (!probe) return 80;
      probe.font = FONT;
      let w = 20;
      for (const s of labels) w = Math.max(w, probe.measureText(s).width);
      return Math.min(w, 220) + 12;
    };
    this.leftW = width(st.query.labels);
    this.rightW = width(st.key.labels);
    const content = Math.max(st.nq, st.nk) * ROW + 8;
    this.viewH = Math.min(content, MAX_VIEW);
    const total = this.leftW + GAP + this.rightW;
    this.scroll.style.height = `${this.viewH + 2}px`;
    this.scroll.style.width = `${total + (content > this.viewH ? 18 : 2)}px`;
    this.spacer.style.height = `${content - this.viewH}px`;
    this.ctx = sizeCanvas(this.canvas, total, this.viewH);
    this.relabel();
    this.paint();
  }

  private onMove(e: MouseEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const index = Math.floor((e.clientY - rect.top + this.scroll.scrollTop - 4) / ROW);
    const st = this.st;
    let hover: Hover | null = null;
    if (x <= this.leftW && index >= 0 && index < st.nq) hover = { side: "q", index };
    else if (x >= this.leftW + GAP && index >= 0 && index < st.nk) hover = { side: "k", index };
    this.setHover(hover);
  }

  private setHover(hover: Hover | null): void {
    if (hover?.side === this.hover?.side && hover?.index === this.hover?.index) return;
    this.hover = hover;
    this.paint();
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.paint();
    });
  }

  private allowed(side: "q" | "k", i: number): boolean {
    if (this.filter === "all") return true;
    const seg = side === "q" ? this.st.query.segment[i] : this.st.key.segment[i];
    return seg === (side === "q" ? this.filter[0] : this.filter[1]).charCodeAt(0) - 65;
  }

  /** Redraw the visible rows: token labels, highlight boxes for a hovered token, and the lines. */
  paint(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const t0 = performance.now();
    const st = this.st;
    const hide = this.state.hideSpecial;
    const fg = cssVar(this.node, "--as-fg");
    const dim = cssVar(this.node, "--as-dim");
    const top = this.scroll.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - 1);
    const last = Math.ceil((top + this.viewH) / ROW) + 1;
    const y = (i: number) => 4 + i * ROW + ROW / 2 - top;
    const x1 = this.leftW;
    const x2 = this.leftW + GAP;
    const total = x2 + this.rightW;
    ctx.clearRect(0, 0, total, this.viewH);
    const heads = Array.from(this.heads).filter((h) => h < st.heads).sort((a, b) => a - b);
    const v = st.values;
    const hover = this.hover;
    // Queries whose lines are drawn: the hovered one, all (for a hovered key), or the rows in view.
    const qFrom = hover?.side === "q" ? hover.index : hover?.side === "k" ? 0 : first;
    const qTo = hover?.side === "q" ? hover.index + 1 : hover?.side === "k" ? st.nq : Math.min(last, st.nq);
    const kFrom = hover?.side === "k" ? hover.index : 0;
    const kTo = hover?.side === "k" ? hover.index + 1 : st.nk;
    let lines = 0;
    ctx.lineWidth = 2;
    for (const h of heads) {
      const f = st.factors(this.layer, h, hide);
      const paths: (Path2D | null)[] = new Array(LEVELS).fill(null);
      const boxes: [number, number, number][] = [];
      for (let q = qFrom; q < qTo; q++) {
        if (!f[q] || !this.allowed("q", q)) continue;
        const base = st.row(this.layer, h, q);
        const yq = y(q);
        // A hovered query shows its strongest keys even when attention is spread thin (long inputs).
        let min = MIN_WEIGHT;
        if (hover?.side === "q") {
          let top = 0;
          for (let k = kFrom; k < kTo; k++) top = Math.max(top, v[base + k] * f[q]);
          min = Math.min(MIN_WEIGHT, top * 0.5);
        }
        for (let k = kFrom; k < kTo; k++) {
          const w = v[base + k] * f[q];
          if (w < min || w <= 0 || (hide && st.key.special[k]) || !this.allowed("k", k)) continue;
          const level = Math.max(min < MIN_WEIGHT ? 4 : 0, Math.min(LEVELS - 1, Math.floor(w * LEVELS)));
          const path = paths[level] ?? (paths[level] = new Path2D());
          path.moveTo(x1, yq);
          path.lineTo(x2, y(k));
          lines++;
          if (hover) boxes.push(hover.side === "q" ? [x2, y(k), w] : [0, yq, w]);
        }
      }
      ctx.strokeStyle = headColor(h);
      ctx.fillStyle = headColor(h);
      for (const [bx, by, w] of boxes) {
        ctx.globalAlpha = Math.min(1, w);
        ctx.fillRect(bx + 2, by - ROW / 2 + 1, (bx ? this.rightW : this.leftW) - 4, ROW - 2);
      }
      for (let level = 0; level < LEVELS; level++) {
        const path = paths[level];
        if (!path) continue;
        ctx.globalAlpha = (level + 0.5) / LEVELS;
        ctx.stroke(path);
      }
    }
    ctx.globalAlpha = 1;
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    const drawLabels = (side: "q" | "k", n: number, labels: string[], special: number[], x: number) => {
      ctx.textAlign = side === "q" ? "right" : "left";
      for (let i = first; i < Math.min(last, n); i++) {
        const on = this.allowed(side, i) && !(hide && special[i]);
        const hot = hover?.side === side && hover.index === i;
        ctx.fillStyle = on || hot ? fg : dim;
        ctx.font = hot ? BOLD : FONT;
        ctx.fillText(labels[i], x, y(i), (side === "q" ? this.leftW : this.rightW) - 8);
      }
    };
    drawLabels("q", st.nq, st.query.labels, st.query.special, x1 - 6);
    drawLabels("k", st.nk, st.key.labels, st.key.special, x2 + 6);
    this.updateCaption(heads);
    const ds = this.node.dataset;
    ds.stack = st.name;
    ds.layer = String(this.layer);
    ds.heads = heads.join(",");
    ds.filter = this.filter;
    ds.hover = hover ? `${hover.side}${hover.index}` : "";
    ds.lines = String(lines);
    ds.paintMs = (performance.now() - t0).toFixed(2);
  }

  private updateCaption(heads: number[]): void {
    const hover = this.hover;
    const st = this.st;
    if (!hover) {
      this.caption.textContent = "Hover over a token to see only its attention.";
      return;
    }
    const labels = hover.side === "q" ? st.key.labels : st.query.labels;
    const n = hover.side === "q" ? st.nk : st.nq;
    const sums = new Float64Array(n);
    for (const h of heads) {
      for (let i = 0; i < n; i++) {
        const [q, k] = hover.side === "q" ? [hover.index, i] : [i, hover.index];
        sums[i] += st.weight(this.layer, h, q, k, this.state.hideSpecial) / Math.max(1, heads.length);
      }
    }
    const top = Array.from(sums.keys()).sort((a, b) => sums[b] - sums[a]).slice(0, 3);
    const own = (hover.side === "q" ? st.query : st.key).labels[hover.index];
    const verb = hover.side === "q" ? "attends most to" : "is attended most by";
    const list = top.map((i) => `\u201c${labels[i]}\u201d ${sums[i].toFixed(2)}`).join(", ");
    this.caption.textContent = `\u201c${own}\u201d (${hover.side === "q" ? "query" : "key"} ${hover.index}) ${verb} ${list} (mean of shown heads)`;
  }
}

export const HIDDEN_NOTE =
  "Attention to and from delimiter tokens ([CLS], [SEP], <s>, </s>\u2026) is hidden; each remaining row is renormalised to sum to 1.";
const FONT = "12px system-ui, sans-serif";
const BOLD = "bold 12px system-ui, sans-serif";

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
