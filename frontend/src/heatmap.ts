// Heatmap view: the query x key attention matrix of one head (for inputs where lines become unreadable).

import { el, fill, fillTable, fitText, legend, select, sizeCanvas, themeColors, uid } from "./dom";
import { HIDDEN_NOTE, range } from "./head";
import { PageState, Stack } from "./state";

const BG_DARK = 30; // the dark theme's background grey, rgb(30, 30, 30)
const SIZE = 560; // at most this many pixels per axis; longer inputs are max-pooled

export class HeatmapView {
  readonly node: HTMLElement;
  private stackName: string;
  private layer: number;
  private head: number;
  private readonly stackSel: HTMLSelectElement | null = null;
  private readonly layerSel: HTMLSelectElement;
  private readonly headSel: HTMLSelectElement;
  private readonly note: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly caption: HTMLDivElement;
  private readonly legends: HTMLDivElement;
  private readonly table: HTMLTableElement;
  private geo = { left: 0, top: 0, cell: 1, pq: 1, pk: 1 };

  constructor(private readonly state: PageState) {
    const opts = state.resolved;
    this.stackName = opts.stack;
    this.layer = opts.layer;
    this.head = opts.heads?.[0] ?? 0;
    this.node = el("div", "as-heatmapview");
    this.node.dataset.view = "heatmap";
    const bar = el("div", "as-bar", undefined, this.node);
    if (state.stacks.length > 1) {
      this.stackSel = select(bar, "Attention", "as-stack", (v) => {
        this.stackName = v;
        this.layer = Math.min(this.layer, this.st.layers - 1);
        this.head = Math.min(this.head, this.st.heads - 1);
        this.paint();
      });
    }
    this.layerSel = select(bar, "Layer", "as-layer", (v) => {
      this.layer = Number(v);
      this.paint();
    });
    this.headSel = select(bar, "Head", "as-head-select", (v) => {
      this.head = Number(v);
      this.paint();
    });
    this.note = el("div", "as-note", undefined, this.node);
    this.legends = el("div", "as-legends", undefined, this.node);
    // Axis titles around the matrix: keys across the top, queries down the side.
    const map = el("div", "as-hmap", undefined, this.node);
    el("span", undefined, undefined, map);
    el("div", "as-axis as-axis-x", "Key tokens (attended to) \u2192", map);
    el("div", "as-axis as-axis-y", "Query tokens (attending)", map);
    this.canvas = el("canvas", undefined, undefined, map);
    this.caption = el("div", "as-caption", "Hover over a cell to read its weight.", this.node);
    this.caption.setAttribute("aria-live", "polite");
    this.table = el("table", "as-sr", undefined, this.node);
    this.table.id = uid("as-heatmap-table");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-describedby", this.table.id);
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    state.subscribe(() => this.paint());
    this.paint();
  }

  private get st(): Stack {
    return this.state.stack(this.stackName);
  }

  paint(): void {
    const st = this.st;
    const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
    if (this.stackSel) fill(this.stackSel, this.state.stacks.map((s) => ({ value: s.name, text: cap(s.name) })), this.stackName);
    fill(this.layerSel, range(st.layers).map((l) => ({ value: String(l), text: this.state.layerLabel(l, st) })), String(this.layer));
    fill(this.headSel, range(st.heads).map((h) => ({ value: String(h), text: this.state.headLabel(h) })), String(this.head));
    const hide = this.state.hideSpecial;
    const pq = Math.min(st.nq, SIZE);
    const pk = Math.min(st.nk, SIZE);
    const cell = Math.max(1, Math.min(24, Math.floor(SIZE / Math.max(pq, pk))));
    const labels = cell >= 10;
    const left = labels ? 110 : 4;
    const top = labels ? 80 : 4;
    this.geo = { left, top, cell, pq, pk };
    const ctx = sizeCanvas(this.canvas, left + pk * cell + 4, top + pq * cell + 4);
    // Max-pool the matrix to pq x pk pixels, then draw it scaled to the cell size.
    const img = new ImageData(pk, pq);
    const light = this.state.theme === "light";
    const colors = themeColors(this.state.theme);
    for (let q = 0; q < st.nq; q++) {
      const y = Math.floor((q * pq) / st.nq);
      for (let k = 0; k < st.nk; k++) {
        const x = Math.floor((k * pk) / st.nk);
        const w = st.weight(this.layer, this.head, q, k, hide);
        const o = (y * pk + x) * 4;
        const a = Math.round(Math.min(1, w) * 255);
        if (a >= img.data[o + 3]) img.data[o + 3] = a;
      }
    }
    let top8 = 1;
    for (let o = 3; o < img.data.length; o += 4) top8 = Math.max(top8, img.data[o]);
    for (let o = 0; o < img.data.length; o += 4) {
      const a = img.data[o + 3] / top8;
      // from the background (white or near-black) to blue #1f77b4
      const bg = light ? 255 : BG_DARK;
      img.data[o] = Math.round(bg + (31 - bg) * a);
      img.data[o + 1] = Math.round(bg + (119 - bg) * a);
      img.data[o + 2] = Math.round(bg + (180 - bg) * a);
      img.data[o + 3] = 255;
    }
    const off = document.createElement("canvas");
    off.width = pk;
    off.height = pq;
    off.getContext("2d")!.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, left, top, pk * cell, pq * cell);
    if (labels) {
      ctx.fillStyle = colors.fg;
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      for (let q = 0; q < st.nq; q++) ctx.fillText(fitText(ctx, st.query.labels[q], left - 8), left - 4, top + (q + 0.5) * cell);
      ctx.textAlign = "left";
      for (let k = 0; k < st.nk; k++) {
        ctx.save();
        ctx.translate(left + (k + 0.5) * cell, top - 4);
        ctx.rotate(-Math.PI / 3);
        ctx.fillText(fitText(ctx, st.key.labels[k], 90), 0, 0);
        ctx.restore();
      }
    }
    const pooled = pq < st.nq || pk < st.nk ? ` Each pixel shows the largest weight of ${Math.ceil(st.nq / pq)}\u00d7${Math.ceil(st.nk / pk)} cells.` : "";
    this.note.textContent =
      `${cap(st.name)} layer ${this.state.layerLabel(this.layer, st)}, head ${this.state.label(this.head)}: rows are queries, columns keys; ` +
      `full blue = the largest weight, ${(top8 / 255).toFixed(2)}.${pooled}${hide ? " " + HIDDEN_NOTE : ""}`;
    const blue = "#1f77b4";
    const from = light ? "#ffffff" : `rgb(${BG_DARK},${BG_DARK},${BG_DARK})`;
    this.legends.replaceChildren();
    legend(this.legends, this.state.measure === "attention" ? "Attention weight" : this.state.valueName(), `linear-gradient(to right, ${from}, ${blue})`, ["0", (top8 / 510).toFixed(2), (top8 / 255).toFixed(2)]);
    const title = `${cap(st.name)} ${this.state.valueName()}, layer ${this.state.label(this.layer)}, ${this.state.headTitle(this.head)}`;
    this.canvas.setAttribute("aria-label", `${title}: a matrix of ${st.nq} query rows by ${st.nk} key columns; the table after it lists each query's strongest keys.`);
    this.describe(title);
    const ds = this.node.dataset;
    ds.stack = st.name;
    ds.layer = String(this.layer);
    ds.head = String(this.head);
    ds.cells = `${pq}x${pk}`;
  }

  private onMove(e: MouseEvent): void {
    const st = this.st;
    const { left, top, cell, pq, pk } = this.geo;
    const rect = this.canvas.getBoundingClientRect();
    const px = Math.floor((e.clientX - rect.left - left) / cell);
    const py = Math.floor((e.clientY - rect.top - top) / cell);
    if (px < 0 || py < 0 || px >= pk || py >= pq) return;
    const q = Math.floor((py * st.nq) / pq);
    const k = Math.floor((px * st.nk) / pk);
    const w = st.weight(this.layer, this.head, q, k, this.state.hideSpecial);
    const label = (i: number) => this.state.label(i);
    this.caption.textContent = `query ${label(q)} \u201c${st.query.labels[q]}\u201d \u2192 key ${label(k)} \u201c${st.key.labels[k]}\u201d: ${w.toFixed(4)}`;
    this.node.dataset.hover = `${q},${k}`;
  }

  /** The canvas's text alternative: each query's three strongest keys (the first 100 queries). */
  private describe(title: string): void {
    const st = this.st;
    const label = (i: number) => `${this.state.label(i)} `;
    const rows: string[][] = [];
    for (let q = 0; q < Math.min(st.nq, 100); q++) {
      const w = Array.from({ length: st.nk }, (_, k) => st.weight(this.layer, this.head, q, k, this.state.hideSpecial));
      const top = Array.from(w.keys()).sort((a, b) => w[b] - w[a]).slice(0, 3);
      rows.push([`${label(q)}${st.query.labels[q]}`, ...top.map((k) => `${label(k)}${st.key.labels[k]}: ${w[k].toFixed(2)}`)]);
    }
    fillTable(this.table, `${title}: strongest keys of each query`, ["query", "1st key", "2nd key", "3rd key"], rows);
  }
}
