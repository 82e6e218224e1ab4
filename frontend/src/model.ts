// Model view: every layer x head as a small line drawing; click one to open it large with hover.

import { el, fill, keepFocus, select, sizeCanvas, themeColors, uid } from "./dom";
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
  private readonly frame: HTMLDivElement;
  private readonly rowEnds = new Map<number, HTMLElement>(); // the last cell of each layer's row
  private stackSel: HTMLSelectElement | null = null;
  private open: [number, number] | null = null;
  private closeDetail: (() => void) | null = null;

  constructor(private readonly state: PageState) {
    const opts = state.resolved;
    this.stackName = opts.stack;
    this.layers = new Set(opts.include_layers ?? range(this.st.layers));
    this.heads = new Set(opts.include_heads ?? range(this.st.heads));
    this.node = el("div", "as-modelview");
    this.node.dataset.view = "model";
    this.bar = el("div", "as-bar", undefined, this.node);
    this.toggles = el("div", "as-bar as-toggles", undefined, this.node);
    this.note = el("div", "as-note", undefined, this.node);
    // The grid scrolls inside its own frame (notebook outputs are narrower than 12 heads); the large head
    // opens as a full-width row right under the row of the thumbnail that opened it.
    this.frame = el("div", "as-frame", undefined, this.node);
    this.grid = el("div", "as-grid", undefined, this.frame);
    this.detail = el("div", "as-detail");
    this.detail.setAttribute("role", "region");
    this.detail.id = uid("as-detail");
    this.node.addEventListener("keydown", (e) => {
      if (e.key !== "Escape" || !this.open) return;
      e.preventDefault();
      this.close();
    });
    if (state.stacks.length > 1) {
      this.stackSel = select(this.bar, "Attention", "as-stack", (v) => {
        this.stackName = v;
        this.layers = new Set(range(this.st.layers));
        this.heads = new Set(range(this.st.heads));
        this.showDetail(null);
        keepFocus(this.node, () => this.draw());
      });
    }
    el("span", "as-note", "Click a head to open it large; hover its tokens there.", this.bar);
    state.subscribe(() => keepFocus(this.node, () => this.draw()));
    this.draw();
  }

  private get st(): Stack {
    return this.state.stack(this.stackName);
  }

  private buildToggles(): void {
    const st = this.st;
    this.toggles.replaceChildren();
    const group = (name: string, n: number, set: Set<number>, cls: string, label: (i: number) => string) => {
      el("span", undefined, `${name}:`, this.toggles);
      const box = el("span", cls, undefined, this.toggles);
      for (let i = 0; i < n; i++) {
        const b = el("button", undefined, label(i), box);
        b.type = "button";
        b.dataset.index = String(i);
        b.dataset.focusKey = `${cls}-${i}`;
        b.title = `show or hide ${name.toLowerCase().replace(/s$/, "")} ${label(i)}`;
        b.setAttribute("aria-pressed", String(set.has(i)));
        b.addEventListener("click", () => {
          if (set.has(i)) set.delete(i);
          else set.add(i);
          keepFocus(this.node, () => this.draw());
        });
      }
    };
    group("Layers", st.layers, this.layers, "as-layer-toggles", (l) => this.state.layerLabel(l, st));
    group("Heads", st.heads, this.heads, "as-head-toggles", (h) => this.state.label(h));
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
    this.rowEnds.clear();
    this.grid.style.gridTemplateColumns = `auto repeat(${heads.length}, ${THUMB + 2}px)`;
    el("div", "as-glabel as-ghead as-gside", "", this.grid);
    for (const h of heads) el("div", "as-glabel as-ghead", cap(this.state.headTitle(h)), this.grid);
    const fg = themeColors(this.state.theme).dim;
    let count = 0;
    for (const l of layers) {
      el("div", "as-glabel as-gside", `Layer ${this.state.layerLabel(l, st)}`, this.grid);
      for (const h of heads) {
        const name = `layer ${this.state.layerLabel(l, st)}, ${this.state.headTitle(h)}`;
        const b = el("button", "as-thumbbtn", undefined, this.grid);
        b.type = "button";
        b.dataset.layer = String(l);
        b.dataset.head = String(h);
        b.dataset.focusKey = `thumb-${l}-${h}`;
        b.title = name;
        b.setAttribute("aria-label", `${name}: open it large`);
        b.setAttribute("aria-expanded", "false");
        const c = el("canvas", "as-thumb", undefined, b);
        c.dataset.layer = String(l);
        c.dataset.head = String(h);
        c.setAttribute("aria-hidden", "true");
        thumbnail(c, st, l, h, this.state.hideSpecial, fg, this.state.colour(h));
        b.addEventListener("click", () => {
          const same = this.open?.[0] === l && this.open?.[1] === h;
          this.showDetail(same ? null : [l, h], true);
        });
        this.rowEnds.set(l, b);
        count++;
      }
    }
    const open = this.open;
    this.showDetail(open && this.layers.has(open[0]) && this.heads.has(open[1]) ? open : null);
    const ds = this.node.dataset;
    ds.stack = st.name;
    ds.thumbs = String(count);
    ds.layers = layers.join(",");
    ds.heads = heads.join(",");
    ds.drawMs = (performance.now() - t0).toFixed(1);
  }

  /** The thumbnail button of one layer and head, if it is in the grid. */
  private thumb(l: number, h: number): HTMLElement | null {
    return this.grid.querySelector<HTMLElement>(`button.as-thumbbtn[data-layer="${l}"][data-head="${h}"]`);
  }

  /** Close the large head and give focus back to its thumbnail. */
  private close(): void {
    const open = this.open;
    this.showDetail(null);
    if (open) this.thumb(open[0], open[1])?.focus();
  }

  /** Open one head large under its row (null closes); `user`: the user asked, so bring it into view. */
  private showDetail(which: [number, number] | null, user = false): void {
    this.closeDetail?.();
    this.closeDetail = null;
    if (this.open) this.thumb(this.open[0], this.open[1])?.setAttribute("aria-expanded", "false");
    this.open = which;
    this.detail.replaceChildren();
    this.node.dataset.open = which ? which.join(",") : "";
    if (!which) {
      this.detail.remove();
      return;
    }
    const [l, h] = which;
    const thumb = this.thumb(l, h);
    thumb?.setAttribute("aria-expanded", "true");
    thumb?.setAttribute("aria-controls", this.detail.id);
    const title = `Layer ${this.state.layerLabel(l, this.st)}, ${this.state.headTitle(h)}`;
    this.detail.setAttribute("aria-label", title);
    const bar = el("div", "as-bar", undefined, this.detail);
    el("strong", undefined, title, bar);
    const close = el("button", "as-close", "Close", bar);
    close.type = "button";
    close.title = "close (Esc)";
    close.dataset.focusKey = "detail-close";
    close.addEventListener("click", () => this.close());
    const view = new HeadView(this.state, { stack: this.stackName, layer: l, heads: [h], controls: false });
    this.detail.appendChild(view.node);
    this.closeDetail = view.dispose;
    (this.rowEnds.get(l) ?? this.grid.lastElementChild)?.after(this.detail);
    if (user) {
      this.detail.scrollIntoView({ block: "nearest" });
      close.focus({ preventScroll: true });
    }
  }
}

/** Draw one head as lines between two columns of (binned) tokens, opacity = weight. */
function thumbnail(c: HTMLCanvasElement, st: Stack, layer: number, head: number, hide: boolean, fg: string, colour: string): void {
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
  ctx.strokeStyle = colour;
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
