// Comparison view: two traces side by side (one layer; one head or the mean of the heads, as query x key
// matrices on one grey scale) and their difference B − A over the aligned tokens (red: more attention in B,
// blue: less; grey rows and columns: a token with no partner). The traces arrive as ordinary payloads
// (decoded once by PageState.decode into state.compared) with the token alignment Python made (difflib).
// Hover any cell for its numbers; the difference matrix takes focus and the arrow keys move over it.

import { el, fill, fillTable, fitText, legend, select, sizeCanvas, themeColors, uid } from "./dom";
import { CompareAlignment, ComparePayload } from "./contract";
import { range } from "./head";
import { PageState, Stack } from "./state";

export const MORE = "#d62728"; // red: more attention in B (as the PNG/SVG)
export const LESS = "#1f77b4"; // blue: less attention in B
const NONE = 0.4; // strength of the muted grey of a cell with no partner (as the PNG/SVG)
const SIZE = 360; // at most this many pixels per matrix axis (cells shrink to fit, down to 1 px)

const CSS = `
.attnscope-root .as-compare-panels{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:flex-start}
.attnscope-root .as-compare-panel{display:flex;flex-direction:column;gap:2px}
.attnscope-root .as-compare-title{max-width:480px;white-space:pre-wrap;unicode-bidi:plaintext;color:var(--as-fg)}
.attnscope-root .as-compare-info{min-height:1.4em;font-variant-numeric:tabular-nums;white-space:pre-wrap;unicode-bidi:plaintext}
`;

/** `#rrggbb` parsed to [r, g, b]. */
function rgb(hex: string): number[] {
  return [0, 1, 2].map((i) => parseInt(hex.slice(1 + 2 * i, 3 + 2 * i), 16));
}

/** The colour of a difference: the background blended towards red (v > 0) or blue (v < 0) by |v| / peak. */
export function differenceColour(v: number, peak: number, bg: string): string {
  const t = peak > 0 ? Math.min(1, Math.abs(v) / peak) : 0;
  const from = rgb(bg);
  const to = rgb(v >= 0 ? MORE : LESS);
  return `rgb(${from.map((c, i) => Math.round(c * (1 - t) + to[i] * t)).join(",")})`;
}

/** Labels of the merged order (as the PNG/SVG): "cat", "cat→dog" (replaced), "−cat" (only in A), "+dog" (only in B). */
export function mergedLabels(al: CompareAlignment, a: string[], b: string[]): string[] {
  return al.kind.map((kind, m) => {
    if (kind === "equal") return a[al.a[m]];
    if (kind === "replace") return `${a[al.a[m]]}\u2192${b[al.b[m]]}`;
    return kind === "delete" ? `\u2212${a[al.a[m]]}` : `+${b[al.b[m]]}`;
  });
}

/** A matrix's weight: one head, or the mean of `heads` (head -1), of a stack's raw attention. */
export function weight(st: Stack, layer: number, head: number, heads: number[], q: number, k: number): number {
  if (head >= 0) return st.raw(layer, head, q, k);
  let sum = 0;
  for (const h of heads) sum += st.raw(layer, h, q, k);
  return sum / heads.length;
}

interface Panel {
  name: "a" | "b" | "diff";
  canvas: HTMLCanvasElement;
  base: HTMLCanvasElement; // the painted matrix, redrawn under the highlight
  nq: number;
  nk: number;
}

export class CompareView {
  readonly node: HTMLElement;
  private readonly cmp: ComparePayload;
  private readonly stacks: [Stack, Stack];
  private layer: number;
  private head: number;
  private readonly layerSel: HTMLSelectElement;
  private readonly headSel: HTMLSelectElement;
  private readonly note: HTMLDivElement;
  private readonly legends: HTMLDivElement;
  private readonly info: HTMLDivElement;
  private readonly table: HTMLTableElement;
  private readonly panels: Panel[] = [];
  private geo = { left: 0, top: 0, cell: 1, labels: false };
  private cursor: [number, number] = [0, 0];
  private diffs: (number | null)[][] = [];

  constructor(private readonly state: PageState) {
    const cmp = state.payload.compare;
    if (!cmp || state.compared.length !== 2) throw new Error("this page holds no comparison");
    this.cmp = cmp;
    this.stacks = [state.compared[0].rawStack(cmp.stacks[0]), state.compared[1].rawStack(cmp.stacks[1])];
    this.layer = cmp.layer;
    this.head = cmp.head;
    this.node = el("div", "as-compareview");
    this.node.dataset.view = "compare";
    el("style", undefined, CSS, this.node);
    const bar = el("div", "as-bar", undefined, this.node);
    this.layerSel = select(bar, "Layer", "as-compare-layer", (v) => {
      this.layer = Number(v);
      this.paint();
    });
    this.headSel = select(bar, "Head", "as-compare-head", (v) => {
      this.head = Number(v);
      this.paint();
    });
    this.note = el("div", "as-note", undefined, this.node);
    this.legends = el("div", "as-legends", undefined, this.node);
    const row = el("div", "as-compare-panels", undefined, this.node);
    this.table = el("table", "as-sr", undefined, this.node);
    this.table.id = uid("as-compare-table");
    const titles = [this.title(0), this.title(1), `${cmp.labels[1]} \u2212 ${cmp.labels[0]} (aligned tokens)`];
    (["a", "b", "diff"] as const).forEach((name, i) => {
      const box = el("div", "as-compare-panel", undefined, row);
      box.dataset.panel = name;
      el("div", "as-compare-title", titles[i], box);
      const canvas = el("canvas", undefined, undefined, box);
      canvas.dataset.panel = name;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-describedby", this.table.id);
      canvas.addEventListener("mousemove", (e) => this.onMove(i, e));
      const base = document.createElement("canvas");
      const st = name === "diff" ? null : this.stacks[i];
      const nq = st ? st.nq : cmp.query.kind.length;
      const nk = st ? st.nk : cmp.key.kind.length;
      this.panels.push({ name, canvas, base, nq, nk });
    });
    const diff = this.panels[2].canvas;
    diff.tabIndex = 0;
    diff.addEventListener("keydown", (e) => this.key(e));
    diff.addEventListener("focus", () => this.describeDiff(...this.cursor));
    this.info = el("div", "as-compare-info as-caption", "Hover over a cell to read its numbers; the difference takes focus and arrow keys.", this.node);
    this.info.setAttribute("aria-live", "polite");
    this.node.appendChild(this.table);
    state.subscribe(() => this.paint());
    this.paint();
  }

  private title(which: number): string {
    const models = this.state.compared.map((s) => s.payload.model.name);
    const model = models[0] !== models[1] ? ` (${models[which]})` : "";
    return `${this.cmp.labels[which]}${model}: ${this.cmp.texts[which]}`;
  }

  private labels(which: number, side: "query" | "key"): string[] {
    const st = this.stacks[which];
    return (side === "query" ? st.query : st.key).labels;
  }

  private headTitle(): string {
    if (this.head >= 0) return `head ${this.state.label(this.head)}`;
    const all = this.stacks.every((s) => s.heads === this.cmp.heads.length);
    return all ? "mean of all heads" : `mean of heads ${this.cmp.heads.map((h) => this.state.label(h)).join(", ")}`;
  }

  /** B − A at merged position (m, n), or null when the query or the key token has no partner. */
  difference(m: number, n: number): number | null {
    const { query: q, key: k } = this.cmp;
    if (q.a[m] < 0 || q.b[m] < 0 || k.a[n] < 0 || k.b[n] < 0) return null;
    const [sa, sb] = this.stacks;
    const heads = this.cmp.heads;
    return weight(sb, this.layer, this.head, heads, q.b[m], k.b[n]) - weight(sa, this.layer, this.head, heads, q.a[m], k.a[n]);
  }

  paint(): void {
    const cmp = this.cmp;
    fill(this.layerSel, range(cmp.layers).map((l) => ({ value: String(l), text: this.state.label(l) })), String(this.layer));
    const heads = cmp.heads.map((h) => ({ value: String(h), text: this.state.label(h) }));
    const mean = cmp.heads.length > 1 ? [{ value: "-1", text: "mean" }] : [];
    fill(this.headSel, [...mean, ...heads], String(this.head));
    const colors = themeColors(this.state.theme);
    const [sa, sb] = this.stacks;
    const nMax = Math.max(...this.panels.flatMap((p) => [p.nq, p.nk]));
    const cell = Math.max(1, Math.min(24, Math.floor(SIZE / nMax)));
    const labels = cell >= 10;
    this.geo = { left: labels ? 90 : 4, top: labels ? 70 : 4, cell, labels };
    // A and B on one grey scale (background to foreground), full at the larger of their largest weights.
    const mats = [sa, sb].map((st) =>
      range(st.nq).map((q) => range(st.nk).map((k) => weight(st, this.layer, this.head, cmp.heads, q, k))),
    );
    let peak = 1e-6;
    for (const m of mats) for (const r of m) for (const v of r) peak = Math.max(peak, v);
    this.diffs = range(cmp.query.kind.length).map((m) => range(cmp.key.kind.length).map((n) => this.difference(m, n)));
    let dpeak = 1e-6;
    for (const r of this.diffs) for (const v of r) if (v !== null) dpeak = Math.max(dpeak, Math.abs(v));
    const bg = rgb(colors.bg);
    const fg = rgb(colors.fg);
    const none = `rgb(${bg.map((c, i) => Math.round(c * (1 - NONE) + rgb(colors.dim)[i] * NONE)).join(",")})`;
    this.panels.forEach((p, i) => {
      const { left, top } = this.geo;
      const ctx = sizeCanvas(p.base, left + p.nk * cell + 4, top + p.nq * cell + 4);
      ctx.fillStyle = colors.bg;
      ctx.fillRect(0, 0, left + p.nk * cell + 4, top + p.nq * cell + 4);
      for (let q = 0; q < p.nq; q++) {
        for (let k = 0; k < p.nk; k++) {
          if (i < 2) {
            const t = Math.min(1, mats[i][q][k] / peak);
            ctx.fillStyle = `rgb(${bg.map((c, j) => Math.round(c * (1 - t) + fg[j] * t)).join(",")})`;
          } else {
            const d = this.diffs[q][k];
            ctx.fillStyle = d === null ? none : differenceColour(d, dpeak, colors.bg);
          }
          ctx.fillRect(left + k * cell, top + q * cell, cell, cell);
        }
      }
      if (labels) this.axisLabels(ctx, i, p, colors.fg, colors.dim);
    });
    this.highlight(null);
    const al = cmp.query;
    const count = (kind: string) => al.kind.filter((x) => x === kind).length;
    const paired = count("equal") + count("replace");
    const shapes = this.stacks.map((s, i) => `${cmp.labels[i]} has ${s.layers} layers x ${s.heads} heads`);
    const differ = sa.layers !== sb.layers || sa.heads !== sb.heads;
    const sizes = differ
      ? ` ${shapes.join(", ")}: layers ${this.state.label(0)}-${this.state.label(cmp.layers - 1)} and heads ` +
        `${this.state.label(0)}-${this.state.label(Math.min(sa.heads, sb.heads) - 1)} of both are compared.`
      : "";
    this.note.textContent =
      `Layer ${this.state.label(this.layer)}, ${this.headTitle()}; rows are queries, columns keys. ` +
      `${paired} query tokens aligned (${count("replace")} replaced), ${count("delete")} only in ${cmp.labels[0]}, ` +
      `${count("insert")} only in ${cmp.labels[1]} (grey: no partner, no difference).${sizes}`;
    this.legends.replaceChildren();
    legend(this.legends, `Attention (${cmp.labels[0]} and ${cmp.labels[1]})`, `linear-gradient(to right, ${colors.bg}, ${colors.fg})`, ["0", (peak / 2).toFixed(2), peak.toFixed(2)]);
    legend(
      this.legends,
      `${cmp.labels[1]} \u2212 ${cmp.labels[0]}: blue less in ${cmp.labels[1]}, red more`,
      `linear-gradient(to right, ${LESS}, ${colors.bg}, ${MORE})`,
      [`\u2212${dpeak.toFixed(3)}`, "0", `+${dpeak.toFixed(3)}`],
    );
    this.describe();
    const ds = this.node.dataset;
    ds.layer = String(this.layer);
    ds.head = String(this.head);
    ds.cells = `${cmp.query.kind.length}x${cmp.key.kind.length}`;
    ds.peak = dpeak.toFixed(6);
    ds.geometry = `${this.geo.left},${this.geo.top},${cell}`; // where cell (q, k) lies on each canvas (tests read it)
  }

  private axisLabels(ctx: CanvasRenderingContext2D, i: number, p: Panel, fg: string, dim: string): void {
    const { left, top, cell } = this.geo;
    const cmp = this.cmp;
    const ql = i < 2 ? this.labels(i, "query") : mergedLabels(cmp.query, this.labels(0, "query"), this.labels(1, "query"));
    const kl = i < 2 ? this.labels(i, "key") : mergedLabels(cmp.key, this.labels(0, "key"), this.labels(1, "key"));
    const paired = (al: CompareAlignment, m: number) => i < 2 || al.kind[m] === "equal" || al.kind[m] === "replace";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let q = 0; q < p.nq; q++) {
      ctx.fillStyle = paired(cmp.query, q) ? fg : dim;
      ctx.fillText(fitText(ctx, ql[q], left - 8), left - 4, top + (q + 0.5) * cell);
    }
    ctx.textAlign = "left";
    for (let k = 0; k < p.nk; k++) {
      ctx.fillStyle = paired(cmp.key, k) ? fg : dim;
      ctx.save();
      ctx.translate(left + (k + 0.5) * cell, top - 4);
      ctx.rotate(-Math.PI / 3);
      ctx.fillText(fitText(ctx, kl[k], 76), 0, 0);
      ctx.restore();
    }
  }

  /** Draw every panel, outlining the cells of merged position `at` (the diff cell and its A and B cells). */
  private highlight(at: [number, number] | null): void {
    const { left, top, cell } = this.geo;
    const { query: q, key: k } = this.cmp;
    const focus = themeColors(this.state.theme).focus;
    this.panels.forEach((p, i) => {
      const w = left + p.nk * cell + 4;
      const h = top + p.nq * cell + 4;
      const ctx = sizeCanvas(p.canvas, w, h);
      ctx.drawImage(p.base, 0, 0, w, h);
      if (!at) return;
      const [m, n] = at;
      const row = i === 0 ? q.a[m] : i === 1 ? q.b[m] : m;
      const col = i === 0 ? k.a[n] : i === 1 ? k.b[n] : n;
      if (row < 0 || col < 0) return;
      ctx.strokeStyle = focus;
      ctx.lineWidth = 2;
      ctx.strokeRect(left + col * cell - 1, top + row * cell - 1, cell + 2, cell + 2);
    });
  }

  private onMove(i: number, e: MouseEvent): void {
    const p = this.panels[i];
    const { left, top, cell } = this.geo;
    const rect = p.canvas.getBoundingClientRect();
    const k = Math.floor((e.clientX - rect.left - left) / cell);
    const q = Math.floor((e.clientY - rect.top - top) / cell);
    if (k < 0 || q < 0 || k >= p.nk || q >= p.nq) return;
    this.node.dataset.hover = `${p.name}:${q},${k}`;
    if (p.name === "diff") {
      this.describeDiff(q, k);
      return;
    }
    const st = this.stacks[i];
    const w = weight(st, this.layer, this.head, this.cmp.heads, q, k);
    const label = (n: number) => this.state.label(n);
    this.info.textContent =
      `${this.cmp.labels[i]}: query ${label(q)} \u201c${st.query.labels[q]}\u201d \u2192 key ${label(k)} ` +
      `\u201c${st.key.labels[k]}\u201d: ${w.toFixed(4)}`;
    this.highlight(null);
  }

  /** The numbers of merged cell (m, n) in the info line, and its cells outlined in all three matrices. */
  private describeDiff(m: number, n: number): void {
    const { query: q, key: k, labels } = this.cmp;
    const name = (al: CompareAlignment, side: "query" | "key", i: number) => {
      const a = al.a[i] >= 0 ? this.labels(0, side)[al.a[i]] : null;
      const b = al.b[i] >= 0 ? this.labels(1, side)[al.b[i]] : null;
      const where = [al.a[i] >= 0 ? `${labels[0]} ${this.state.label(al.a[i])}` : "", al.b[i] >= 0 ? `${labels[1]} ${this.state.label(al.b[i])}` : ""];
      if (a === null) return `\u201c${b}\u201d (only in ${labels[1]}, ${where[1]})`;
      if (b === null) return `\u201c${a}\u201d (only in ${labels[0]}, ${where[0]})`;
      return `\u201c${a === b ? a : `${a}\u2192${b}`}\u201d (${where.join(", ")})`;
    };
    const d = this.diffs[m]?.[n] ?? null;
    const head = `query ${name(q, "query", m)} \u2192 key ${name(k, "key", n)}`;
    if (d === null) {
      this.info.textContent = `${head}: no difference (a token without a partner in the other trace)`;
    } else {
      const [sa, sb] = this.stacks;
      const heads = this.cmp.heads;
      const wa = weight(sa, this.layer, this.head, heads, q.a[m], k.a[n]);
      const wb = weight(sb, this.layer, this.head, heads, q.b[m], k.b[n]);
      const sign = d >= 0 ? "+" : "\u2212";
      this.info.textContent =
        `${head}: ${labels[0]} ${wa.toFixed(4)}, ${labels[1]} ${wb.toFixed(4)}, ` +
        `${labels[1]} \u2212 ${labels[0]} ${sign}${Math.abs(d).toFixed(4)}`;
    }
    this.node.dataset.diff = d === null ? "none" : d.toFixed(4);
    this.highlight([m, n]);
  }

  private key(e: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const nq = this.cmp.query.kind.length;
    const nk = this.cmp.key.kind.length;
    let [m, n] = this.cursor;
    if (moves[e.key]) {
      m = Math.min(nq - 1, Math.max(0, m + moves[e.key][0]));
      n = Math.min(nk - 1, Math.max(0, n + moves[e.key][1]));
    } else if (e.key === "Home") n = 0;
    else if (e.key === "End") n = nk - 1;
    else if (e.key === "Escape") {
      this.highlight(null);
      return;
    } else return;
    e.preventDefault();
    this.cursor = [m, n];
    this.node.dataset.cursor = `${m},${n}`;
    this.describeDiff(m, n);
  }

  /** The canvases' text alternative: for each aligned query, the three keys whose attention changed most. */
  private describe(): void {
    const cmp = this.cmp;
    const ql = mergedLabels(cmp.query, this.labels(0, "query"), this.labels(1, "query"));
    const kl = mergedLabels(cmp.key, this.labels(0, "key"), this.labels(1, "key"));
    const rows: string[][] = [];
    this.diffs.slice(0, 100).forEach((row, m) => {
      const cols = range(row.length).filter((n) => row[n] !== null);
      if (!cols.length) {
        rows.push([ql[m], "no partner", "", ""]);
        return;
      }
      cols.sort((x, y) => Math.abs(row[y]!) - Math.abs(row[x]!));
      rows.push([ql[m], ...cols.slice(0, 3).map((n) => `${kl[n]}: ${row[n]! >= 0 ? "+" : "\u2212"}${Math.abs(row[n]!).toFixed(3)}`)]);
    });
    const title = `${cmp.labels[1]} \u2212 ${cmp.labels[0]}, layer ${this.state.label(this.layer)}, ${this.headTitle()}`;
    fillTable(this.table, `${title}: largest changes of each query`, ["query", "1st key", "2nd key", "3rd key"], rows);
    for (const p of this.panels) {
      const what = p.name === "diff" ? title : `${cmp.labels[p.name === "a" ? 0 : 1]} attention, layer ${this.state.label(this.layer)}, ${this.headTitle()}`;
      p.canvas.setAttribute("aria-label", `${what}: ${p.nq} query rows by ${p.nk} key columns`);
    }
  }
}
