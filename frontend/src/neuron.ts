// Neuron view: for one layer, head and query token, every term of the attention score:
// q, each k, q x k element-wise, q.k, the scaling, any position bias and mask, and the softmax.

import { el, fill, keepFocus, legend, select, signedColor, sizeCanvas, uid } from "./dom";
import { PageState, Neuron } from "./state";

const ROW = 16;
const MAX_ROWS = 512; // longer inputs list the keys with the most weight, in order

export class NeuronView {
  readonly node: HTMLElement;
  private block: Neuron;
  private li = 0;
  private hi = 0;
  private query: number;
  private readonly bar: HTMLDivElement;
  private readonly qlist: HTMLDivElement;
  private readonly note: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly legends: HTMLDivElement;
  private readonly layerSel: HTMLSelectElement;
  private readonly headSel: HTMLSelectElement;

  constructor(private readonly state: PageState) {
    const opts = state.resolved;
    this.block = state.neurons[0];
    const info = this.block.info;
    this.li = Math.max(0, info.layers.indexOf(opts.layer));
    this.hi = Math.max(0, info.heads.indexOf(opts.heads?.[0] ?? 0));
    this.query = opts.query_index;
    this.node = el("div", "as-neuronview");
    this.node.dataset.view = "neuron";
    this.bar = el("div", "as-bar", undefined, this.node);
    this.layerSel = select(this.bar, "Layer", "as-layer", (v) => {
      this.li = Number(v);
      this.paint();
    });
    this.headSel = select(this.bar, "Head", "as-head-select", (v) => {
      this.hi = Number(v);
      this.paint();
    });
    const prompt = el("span", "as-note", "Query token (click one, or Tab here and use the arrow keys and Enter):", this.node);
    prompt.id = uid("as-qprompt");
    this.qlist = el("div", "as-qlist", undefined, this.node);
    this.qlist.setAttribute("role", "listbox");
    this.qlist.setAttribute("aria-labelledby", prompt.id);
    this.qlist.addEventListener("keydown", (e) => this.onKey(e));
    this.note = el("div", "as-note", undefined, this.node);
    this.legends = el("div", "as-legends", undefined, this.node);
    // The table scrolls inside its own frame, so its column heads stay in view on long inputs.
    this.body = el("div", "as-ncols", undefined, this.node);
    this.caption = el("div", "as-caption", "Hover over a vector cell to read its value.", this.node);
    this.caption.setAttribute("aria-live", "polite");
    state.subscribe(() => this.paint());
    this.paint();
  }

  private relabel(): void {
    const info = this.block.info;
    fill(this.layerSel, info.layers.map((l, i) => ({ value: String(i), text: this.state.label(l) })), String(this.li));
    fill(this.headSel, info.heads.map((h, i) => ({ value: String(i), text: this.state.label(h) })), String(this.hi));
    const st = this.state.rawStack(info.stack);
    keepFocus(this.qlist, () => {
      this.qlist.replaceChildren();
      st.query.labels.forEach((label, i) => {
        const span = el("span", "as-tok", label, this.qlist);
        span.dataset.index = String(i);
        span.dataset.focusKey = `q-${i}`;
        span.title = `query ${this.state.label(i)}: ${label}`;
        span.setAttribute("role", "option");
        span.setAttribute("aria-selected", String(i === this.query));
        span.tabIndex = i === this.query ? 0 : -1; // roving focus: one stop in the Tab order
        span.addEventListener("click", () => this.choose(i));
      });
    });
  }

  private choose(i: number): void {
    this.query = i;
    this.paint();
  }

  /** Arrow keys, Home and End move focus over the query tokens; Enter or Space chooses one. */
  private onKey(e: KeyboardEvent): void {
    const options = Array.from(this.qlist.querySelectorAll<HTMLElement>("[role=option]"));
    const at = options.findIndex((o) => o === this.node.ownerDocument.activeElement);
    if (at < 0) return;
    const moves: Record<string, number> = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: options.length - 1 };
    if (e.key in moves) {
      const next = options[Math.max(0, Math.min(options.length - 1, moves[e.key]))];
      for (const o of options) o.tabIndex = o === next ? 0 : -1;
      next.focus();
    } else if (e.key === "Enter" || e.key === " ") {
      this.choose(at);
    } else {
      return;
    }
    e.preventDefault();
  }

  paint(): void {
    this.relabel();
    const b = this.block;
    const info = b.info;
    const st = this.state.rawStack(info.stack);
    const [nl, nh, nq, d] = b.queries.shape;
    const nk = b.keys.shape[2];
    void nl;
    const q = this.query;
    const qv = b.queries.values.subarray(((this.li * nh + this.hi) * nq + q) * d, ((this.li * nh + this.hi) * nq + q + 1) * d);
    const kBase = (this.li * nh + this.hi) * nk * d;
    const kv = b.keys.values;
    const scale = info.scale[this.li];
    const maskRow = b.mask.values.subarray((this.li * nq + q) * nk, (this.li * nq + q + 1) * nk);
    const biasRow = b.bias ? b.bias.values.subarray(((this.li * nh + this.hi) * nq + q) * nk, ((this.li * nh + this.hi) * nq + q + 1) * nk) : null;
    const dots = new Float64Array(nk);
    const scores = new Float64Array(nk);
    for (let k = 0; k < nk; k++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += qv[i] * kv[kBase + k * d + i];
      dots[k] = s;
      scores[k] = s * scale + (biasRow ? biasRow[k] : 0) + maskRow[k];
    }
    let mx = -Infinity;
    for (let k = 0; k < nk; k++) mx = Math.max(mx, scores[k]);
    const soft = new Float64Array(nk);
    let sum = 0;
    for (let k = 0; k < nk; k++) sum += soft[k] = Math.exp(scores[k] - mx);
    for (let k = 0; k < nk; k++) soft[k] /= sum;
    let rows = Array.from({ length: nk }, (_, k) => k);
    if (nk > MAX_ROWS) rows = rows.sort((a, c) => soft[c] - soft[a]).slice(0, MAX_ROWS).sort((a, c) => a - c);
    const masked = (k: number) => this.state.masked(maskRow[k]);
    const hasMask = Array.from(maskRow).some((m) => m !== 0);
    const model = this.state.payload.model;
    this.note.textContent =
      `${model.name}, ${info.stack} layer ${this.state.label(info.layers[this.li])}, head ${this.state.label(info.heads[this.hi])}: ` +
      `score = q\u00b7k \u00d7 ${fmt(scale, 6)}${biasRow ? " + position bias" : ""}${hasMask ? " + mask" : ""}; softmax over ${nk} keys.` +
      (rows.length < nk ? ` Showing the ${rows.length} keys with the most weight.` : "") +
      " Blue positive, orange negative; intensity = magnitude.";
    // Columns: key token | k (row 0: q) | q x k | q.k | x scale | + bias | + mask | softmax
    const col = (title: string, cls: string) => {
      const c = el("div", cls, undefined);
      c.style.display = "flex";
      c.style.flexDirection = "column";
      const h = el("div", "as-hdr", title, c);
      h.style.height = `${ROW}px`;
      return c;
    };
    const cell = (parent: HTMLElement, text: string, cls = "") => {
      const c = el("div", cls, text, parent);
      c.style.height = `${ROW}px`;
      c.style.whiteSpace = "pre";
      return c;
    };
    const tokens = col("key token \u2193", "as-ntok");
    cell(tokens, `q: ${st.query.labels[q]}`, "as-tok").title = `query ${this.state.label(q)}: ${st.query.labels[q]}`;
    for (const k of rows) cell(tokens, st.key.labels[k], "as-tok").title = `key ${this.state.label(k)}: ${st.key.labels[k]}`;
    const cw = Math.max(2, Math.min(8, Math.floor(256 / d)));
    let maxK = 0;
    let maxP = 0;
    for (let i = 0; i < d; i++) maxK = Math.max(maxK, Math.abs(qv[i]));
    for (const k of rows) {
      for (let i = 0; i < d; i++) {
        const x = kv[kBase + k * d + i];
        maxK = Math.max(maxK, Math.abs(x));
        maxP = Math.max(maxP, Math.abs(x * qv[i]));
      }
    }
    const vecCol = (title: string, value: (row: number, i: number) => number, max: number, first: boolean) => {
      const c = col(title, "as-nvec");
      const canvas = el("canvas", undefined, undefined, c);
      canvas.setAttribute("role", "img");
      canvas.setAttribute(
        "aria-label",
        `${title}: ${d} dimensions of each vector as coloured cells, one row per key${first ? " under the query's row" : ""}; the numbers follow in the next columns.`,
      );
      const ctx = sizeCanvas(canvas, cw * d, ROW * (rows.length + 1));
      const draw = (r: number, k: number) => {
        for (let i = 0; i < d; i++) {
          ctx.fillStyle = signedColor(value(k, i), max);
          ctx.fillRect(i * cw, r * ROW + 1, cw - (cw > 3 ? 1 : 0), ROW - 2);
        }
      };
      if (first) draw(0, -1);
      rows.forEach((k, r) => draw(r + 1, k));
      canvas.addEventListener("mousemove", (e) => {
        const rect = canvas.getBoundingClientRect();
        const r = Math.floor((e.clientY - rect.top) / ROW);
        const i = Math.floor((e.clientX - rect.left) / cw);
        if (i < 0 || i >= d || r < 0 || r > rows.length || (r === 0 && !first)) return;
        const k = r === 0 ? -1 : rows[r - 1];
        const who = k < 0 ? `q of \u201c${st.query.labels[q]}\u201d` : `${title} of \u201c${st.key.labels[k]}\u201d`;
        this.caption.textContent = `${who}, dimension ${this.state.label(i)}: ${fmt(value(k, i), 6)}`;
      });
      return c;
    };
    const kval = (k: number, i: number) => (k < 0 ? qv[i] : kv[kBase + k * d + i]);
    const pval = (k: number, i: number) => (k < 0 ? 0 : qv[i] * kv[kBase + k * d + i]);
    const numCol = (title: string, name: string, value: (k: number) => number, digits: number) => {
      const c = col(title, "as-ncol");
      cell(c, "");
      for (const k of rows) {
        const x = value(k);
        const node = cell(c, masked(k) && name !== "dot" ? "masked" : fmt(x, digits), "as-num");
        node.dataset.col = name;
        node.dataset.key = String(k);
        node.dataset.value = String(x);
      }
      return c;
    };
    const cols = [
      tokens,
      vecCol(`k (top row: q), dimension \u2192`, kval, maxK, true),
      vecCol("q \u00d7 k, dimension \u2192", pval, maxP, false),
      numCol("q\u00b7k", "dot", (k) => dots[k], 3),
      numCol(`\u00d7 ${fmt(scale, 4)}`, "scaled", (k) => dots[k] * scale, 3),
    ];
    if (biasRow) cols.push(numCol("+ bias", "bias", (k) => biasRow[k], 3));
    cols.push(numCol("score", "score", (k) => scores[k], 3));
    const smax = Math.max(...rows.map((k) => soft[k]));
    const sm = numCol("softmax", "softmax", (k) => soft[k], 4);
    Array.from(sm.children).slice(2).forEach((n, r) => {
      const k = rows[r];
      (n as HTMLElement).style.background = `linear-gradient(to left, rgba(31,119,180,.55) ${((soft[k] / (smax || 1)) * 100).toFixed(1)}%, transparent 0)`;
    });
    cols.push(sm);
    this.body.replaceChildren(...cols);
    const ticks = (max: number) => [fmt(-max, 2), "0", fmt(max, 2)];
    const gradient = `linear-gradient(to right, ${signedColor(-1, 1)}, ${signedColor(0, 1)}, ${signedColor(1, 1)})`;
    this.legends.replaceChildren();
    legend(this.legends, "q and k values", gradient, ticks(maxK));
    legend(this.legends, "q \u00d7 k values", gradient, ticks(maxP));
    const ds = this.node.dataset;
    ds.stack = info.stack;
    ds.layer = String(info.layers[this.li]);
    ds.head = String(info.heads[this.hi]);
    ds.query = String(q);
    ds.rows = String(rows.length);
  }
}

function fmt(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "\u221e" : "\u2212\u221e";
  return x.toFixed(digits).replace("-", "\u2212");
}
