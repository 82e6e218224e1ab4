// Head view: tokens on the left attend to tokens on the right; one colour per head, weight as opacity.
// Drawn on one canvas that shows only the rows in view, so thousands of tokens stay fast.

import { stripe } from "./colours";
import { el, fill, fillTable, fitText, keepFocus, select, sizeCanvas, themeColors, uid } from "./dom";
import { Filter, segmentAllowed } from "./filters";
import { PageState, Stack } from "./state";


export interface HeadConfig {
  stack?: string;
  layer?: number;
  heads?: number[];
  controls: boolean;
}

interface Hover {
  side: "q" | "k";
  index: number;
}

const ROW = 18;
const GAP = 140;
const MAX_VIEW = 560;
const LEVELS = 32; // opacity steps: lines are batched into one path per head and step

export class HeadView {
  readonly node: HTMLElement;
  private stackName: string;
  private layer: number;
  private heads: Set<number>;
  private filter: Filter = "all";
  private hover: Hover | null = null; // under the mouse
  private pinned: Hover | null = null; // chosen by click, Enter or Space; shown while the mouse is elsewhere
  private cursor: Hover | null = null; // the keyboard's place among the tokens
  private focused = false;
  private captionKey = "";
  private readonly canvas: HTMLCanvasElement;
  private readonly scroll: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly table: HTMLTableElement;
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
    const opts = state.resolved;
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
    this.caption = el("div", "as-caption", IDLE, this.node);
    this.caption.setAttribute("aria-live", "polite");
    this.table = el("table", "as-sr", undefined, this.node);
    this.table.id = uid("as-head-table");
    // The canvas takes the keyboard: arrows move among tokens, Enter/Space selects (as hovering does).
    this.canvas.tabIndex = 0;
    this.canvas.dataset.focusKey = "lines"; // a model view's redraw gives focus back to the new detail's lines
    this.canvas.setAttribute("role", "application");
    this.canvas.setAttribute("aria-roledescription", "attention lines");
    this.canvas.setAttribute(
      "aria-label",
      "Attention between tokens. Up and Down move between tokens, Left and Right switch between the query and key columns, " +
        "Enter or Space selects a token to show only its attention, Escape clears. The table after it lists the strongest weights.",
    );
    this.canvas.setAttribute("aria-describedby", this.table.id);
    this.buildControls();
    this.scroll.addEventListener("scroll", () => this.schedule());
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.canvas.addEventListener("click", () => this.select(this.hover));
    this.canvas.addEventListener("keydown", (e) => this.onKey(e));
    this.canvas.addEventListener("focus", () => {
      this.focused = true;
      this.cursor ??= this.pinned ?? this.hover ?? { side: "q", index: this.firstRow() };
      this.paint();
    });
    this.canvas.addEventListener("blur", () => {
      this.focused = false;
      this.paint();
    });
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
        this.hover = this.pinned = this.cursor = null;
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
      const only = this.state.resolved.include_layers;
      const layers = st.name === this.state.resolved.stack ? only : range(st.layers);
      fill(this.layerSel, layers.map((l) => ({ value: String(l), text: this.state.layerLabel(l, st) })), String(this.layer));
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
    keepFocus(this.headBox, () => this.buildHeads(st));
    const sides = st.name === "cross" ? "decoder tokens (queries, left) attend to encoder tokens (keys, right)" : "";
    this.note.textContent = [sides, this.state.hideSpecial ? HIDDEN_NOTE : ""].filter(Boolean).join(" \u00b7 ");
  }

  /** The head squares (real toggle buttons) and All / None. */
  private buildHeads(st: Stack): void {
    this.headBox.replaceChildren();
    this.headBox.style.display = this.cfg.controls ? "" : "none";
    this.headBox.setAttribute("role", "group");
    this.headBox.setAttribute("aria-label", "Heads shown");
    for (let h = 0; h < st.heads; h++) {
      const block = el("button", "as-head", this.state.headLabel(h) === "all heads" ? "all" : this.state.label(h), this.headBox);
      block.type = "button";
      block.style.background = this.state.colour(h);
      block.dataset.head = String(h);
      block.dataset.focusKey = `head-${h}`;
      block.title = `head ${this.state.label(h)}: click toggles, double-click shows only this head (again: all heads)`;
      block.setAttribute("aria-label", `${this.state.headTitle(h)}`);
      block.setAttribute("aria-pressed", String(this.heads.has(h)));
      block.addEventListener("click", () => {
        if (this.heads.has(h)) this.heads.delete(h);
        else this.heads.add(h);
        this.syncHeads();
      });
      block.addEventListener("dblclick", () => {
        // BertViz: double-click shows only this head; on the only head shown, it brings all back.
        const only = this.heads.size === 1 && this.heads.has(h);
        this.heads = new Set(only ? range(st.heads) : [h]);
        this.syncHeads();
      });
    }
    for (const [text, all] of [["All", true], ["None", false]] as const) {
      const b = el("button", "as-allnone", text, this.headBox);
      b.type = "button";
      b.dataset.focusKey = `heads-${text}`;
      b.title = all ? "show every head" : "hide every head";
      b.addEventListener("click", () => {
        this.heads = new Set(all ? range(this.st.heads) : []);
        this.syncHeads();
      });
    }
  }

  private syncHeads(): void {
    for (const block of Array.from(this.headBox.querySelectorAll<HTMLElement>(".as-head"))) {
      block.setAttribute("aria-pressed", String(this.heads.has(Number(block.dataset.head))));
    }
    this.paint();
  }

  private firstRow(): number {
    return Math.min(Math.max(0, Math.floor(this.scroll.scrollTop / ROW)), this.st.nq - 1);
  }

  /** Pin a token (or clear the pin with null or the pinned token itself), as a lasting hover. */
  private select(token: Hover | null): void {
    const same = token && this.pinned && token.side === this.pinned.side && token.index === this.pinned.index;
    this.pinned = same ? null : token;
    if (token) this.cursor = token;
    this.paint();
  }

  private onKey(e: KeyboardEvent): void {
    const st = this.st;
    const cur = this.cursor ?? { side: "q" as const, index: this.firstRow() };
    const n = (side: "q" | "k") => (side === "q" ? st.nq : st.nk);
    const page = Math.max(1, Math.floor(this.viewH / ROW) - 1);
    const move: Record<string, () => Hover> = {
      ArrowDown: () => ({ side: cur.side, index: cur.index + 1 }),
      ArrowUp: () => ({ side: cur.side, index: cur.index - 1 }),
      PageDown: () => ({ side: cur.side, index: cur.index + page }),
      PageUp: () => ({ side: cur.side, index: cur.index - page }),
      Home: () => ({ side: cur.side, index: 0 }),
      End: () => ({ side: cur.side, index: n(cur.side) - 1 }),
      ArrowLeft: () => ({ side: "q", index: cur.index }),
      ArrowRight: () => ({ side: "k", index: cur.index }),
    };
    if (e.key in move) {
      const next = move[e.key]();
      next.index = Math.max(0, Math.min(n(next.side) - 1, next.index));
      this.cursor = next;
      this.reveal(next.index);
      this.paint();
    } else if (e.key === "Enter" || e.key === " ") {
      this.select(cur);
    } else if (e.key === "Escape" && this.pinned) {
      this.select(null);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }

  /** Scroll so that row `index` is in view. */
  private reveal(index: number): void {
    const top = 4 + index * ROW;
    if (top < this.scroll.scrollTop) this.scroll.scrollTop = top - 4;
    else if (top + ROW > this.scroll.scrollTop + this.viewH) this.scroll.scrollTop = top + ROW - this.viewH + 4;
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
    const label = hover ? (hover.side === "q" ? st.query.labels : st.key.labels)[hover.index] : "";
    this.canvas.title = label; // the full token, also when the canvas shows it cut short
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
    return segmentAllowed(this.filter, side, side === "q" ? this.st.query.segment[i] : this.st.key.segment[i]);
  }

  /** Redraw the visible rows: token labels, highlight boxes for a hovered token, and the lines. */
  paint(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const t0 = performance.now();
    const st = this.st;
    const hide = this.state.hideSpecial;
    const colors = themeColors(this.state.theme);
    const { fg, dim } = colors;
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
    const hover = this.hover ?? this.pinned;
    // Queries whose lines are drawn: the hovered one, all (for a hovered key), or the rows in view.
    const qFrom = hover?.side === "q" ? hover.index : hover?.side === "k" ? 0 : first;
    const qTo = hover?.side === "q" ? hover.index + 1 : hover?.side === "k" ? st.nq : Math.min(last, st.nq);
    const kFrom = hover?.side === "k" ? hover.index : 0;
    const kTo = hover?.side === "k" ? hover.index + 1 : st.nk;
    let lines = 0;
    const MIN_WEIGHT = this.state.resolved.min_weight; // lines fainter than this are not drawn
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
      ctx.strokeStyle = this.state.colour(h);
      ctx.fillStyle = this.state.colour(h);
      for (const [bx, by, w] of boxes) {
        // One stripe per shown head inside the token's box (BertViz), so heads never blend into one colour.
        const [sx, sw] = stripe(bx + 2, (bx ? this.rightW : this.leftW) - 4, heads.indexOf(h), heads.length);
        ctx.globalAlpha = Math.min(1, w);
        ctx.fillRect(sx, by - ROW / 2 + 1, sw, ROW - 2);
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
        const room = (side === "q" ? this.leftW : this.rightW) - 8;
        ctx.fillText(fitText(ctx, labels[i], room), x, y(i));
        const cur = this.cursor;
        if (this.focused && cur?.side === side && cur.index === i) {
          ctx.strokeStyle = colors.focus;
          ctx.lineWidth = 2;
          ctx.strokeRect(side === "q" ? 1 : x - 5, y(i) - ROW / 2 + 1, room + 6, ROW - 2);
        }
      }
    };
    drawLabels("q", st.nq, st.query.labels, st.query.special, x1 - 6);
    drawLabels("k", st.nk, st.key.labels, st.key.special, x2 + 6);
    this.updateCaption(heads, hover);
    const ds = this.node.dataset;
    ds.stack = st.name;
    ds.layer = String(this.layer);
    ds.heads = heads.join(",");
    ds.filter = this.filter;
    ds.hover = hover ? `${hover.side}${hover.index}` : "";
    ds.pinned = this.pinned ? `${this.pinned.side}${this.pinned.index}` : "";
    ds.cursor = this.focused && this.cursor ? `${this.cursor.side}${this.cursor.index}` : "";
    ds.lines = String(lines);
    ds.paintMs = (performance.now() - t0).toFixed(2);
  }

  /** The caption under the canvas and the hidden table of the strongest weights (the canvas's text). */
  private updateCaption(heads: number[], hover: Hover | null): void {
    const st = this.st;
    const cur = this.focused ? this.cursor : null;
    const key = [st.name, this.layer, heads, this.state.hideSpecial, this.state.base, hover?.side, hover?.index, cur?.side, cur?.index].join("|");
    if (key === this.captionKey) return; // scrolling repaints; the words stay
    this.captionKey = key;
    const label = (i: number) => this.state.label(i);
    this.caption.classList.toggle("as-empty", heads.length === 0);
    if (heads.length === 0) {
      this.caption.textContent = "No heads selected: click a head square, or All, to show attention.";
      fillTable(this.table, "No heads selected.", [], []);
      return;
    }
    const shown = `layer ${this.state.layerLabel(this.layer, st)}, ${heads.length === st.heads ? "all heads" : `head${heads.length > 1 ? "s" : ""} ${heads.map(label).join(", ")}`}`;
    const mean = (q: number, k: number) => {
      let s = 0;
      for (const h of heads) s += st.weight(this.layer, h, q, k, this.state.hideSpecial);
      return s / heads.length;
    };
    if (!hover) {
      this.caption.textContent = cur ? `${tokenName(st, cur, label)}: press Enter to show its attention.` : IDLE;
      // Without a selected token: each query's strongest key (the first 100 queries).
      const rows: string[][] = [];
      const v = st.values;
      const sums = new Float64Array(st.nk);
      for (let q = 0; q < Math.min(st.nq, 100); q++) {
        sums.fill(0);
        for (const h of heads) {
          const f = st.factors(this.layer, h, this.state.hideSpecial)[q] / heads.length;
          const base = st.row(this.layer, h, q);
          if (f) for (let k = 0; k < st.nk; k++) if (!(this.state.hideSpecial && st.key.special[k])) sums[k] += v[base + k] * f;
        }
        let best = 0;
        for (let k = 1; k < st.nk; k++) if (sums[k] > sums[best]) best = k;
        rows.push([`${label(q)} ${st.query.labels[q]}`, `${label(best)} ${st.key.labels[best]}`, sums[best].toFixed(2)]);
      }
      fillTable(this.table, `Strongest key for each query token, ${shown} (mean weight)`, ["query", "strongest key", "weight"], rows);
      return;
    }
    const labels = hover.side === "q" ? st.key.labels : st.query.labels;
    const n = hover.side === "q" ? st.nk : st.nq;
    const sums = new Float64Array(n);
    for (let i = 0; i < n; i++) sums[i] = hover.side === "q" ? mean(hover.index, i) : mean(i, hover.index);
    const order = Array.from(sums.keys()).sort((a, b) => sums[b] - sums[a]);
    const top = order.slice(0, 3);
    const verb = hover.side === "q" ? "attends most to" : "is attended most by";
    const list = top.map((i) => `\u201c${labels[i]}\u201d ${sums[i].toFixed(2)}`).join(", ");
    this.caption.textContent = `${tokenName(st, hover, label)} ${verb} ${list} (mean of shown heads)`;
    const other = hover.side === "q" ? "key" : "query";
    fillTable(
      this.table,
      `${tokenName(st, hover, label)}: strongest ${other} tokens, ${shown} (mean weight)`,
      [other, "weight"],
      order.slice(0, 10).map((i) => [`${label(i)} ${labels[i]}`, sums[i].toFixed(2)]),
    );
  }
}

/** \u201ctoken\u201d (query 3), numbered as the page numbers. */
function tokenName(st: Stack, t: Hover, label: (i: number) => string): string {
  const own = (t.side === "q" ? st.query : st.key).labels[t.index];
  return `\u201c${own}\u201d (${t.side === "q" ? "query" : "key"} ${label(t.index)})`;
}

const IDLE = "Hover over a token (or Tab to the lines and use the arrow keys) to see only its attention.";
export const HIDDEN_NOTE =
  "Attention to and from delimiter tokens ([CLS], [SEP], <s>, </s>\u2026) is hidden; each remaining row is renormalised to sum to 1.";
const FONT = "12px system-ui, sans-serif";
const BOLD = "bold 12px system-ui, sans-serif";

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
