// Contribution view: for a chosen output position, which input tokens reach it, layer by layer: one stacked
// bar per layer, segment j = input token j's share of that layer's row of a layered measure (rollout by default).

import { ContributionPayload } from "./contract";
import { el, fill, fillTable, select, uid } from "./dom";
import { HIDDEN_NOTE, range } from "./head";
import { Arr } from "./payload";
import { PageState } from "./state";

const LABEL_SHARE = 0.06; // a segment at least this wide carries its token's label (as in the PNG/SVG)

/** A layer's row as shares of its sum, delimiter keys zeroed when hidden (the static drawer computes the same). */
export function shares(row: number[], special: number[], hide: boolean): number[] {
  const kept = row.map((v, k) => (hide && special[k] ? 0 : v));
  const sum = kept.reduce((a, b) => a + b, 0);
  return kept.map((v) => (sum > 0 ? v / sum : 0));
}

export class ContributionView {
  readonly node: HTMLElement;
  private position: number;
  private readonly info: ContributionPayload;
  private readonly values: Arr;
  private readonly posSel: HTMLSelectElement;
  private readonly note: HTMLDivElement;
  private readonly rows: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly table: HTMLTableElement;
  private cursor = { layer: 0, key: 0 };

  constructor(private readonly state: PageState) {
    if (!state.payload.contribution || !state.contribution) throw new Error("this page carries no contribution data");
    this.info = state.payload.contribution;
    this.values = state.contribution;
    this.position = this.info.position;
    this.node = el("div", "as-contributionview");
    this.node.dataset.view = "contribution";
    const bar = el("div", "as-bar", undefined, this.node);
    this.posSel = select(bar, "Output position", "as-position", (v) => {
      this.position = Number(v);
      this.paint();
    });
    this.note = el("div", "as-note", undefined, this.node);
    this.rows = el("div", "as-crows", undefined, this.node);
    this.rows.setAttribute("role", "application");
    this.rows.setAttribute("aria-roledescription", "contribution bars");
    this.rows.addEventListener("keydown", (e) => this.onKey(e));
    this.caption = el("div", "as-caption", "Hover over (or Tab to, then use the arrow keys on) a segment to read its numbers.", this.node);
    this.caption.setAttribute("aria-live", "polite");
    this.table = el("table", "as-sr", undefined, this.node);
    this.table.id = uid("as-contribution-table");
    this.rows.setAttribute("aria-describedby", this.table.id);
    state.subscribe(() => this.paint());
    this.paint();
  }

  private get side() {
    return this.state.payload.sides[this.state.payload.stacks.find((s) => s.name === this.info.stack)?.key ?? "source"];
  }

  private row(i: number): number[] {
    const [, nq, nk] = this.values.shape;
    const start = (i * nq + this.position) * nk;
    return Array.from(this.values.values.subarray(start, start + nk));
  }

  private what(): string {
    const scale = this.info.scale ? ` (${this.info.scale})` : "";
    return `${this.info.measure}: ${this.info.title}${scale}`;
  }

  paint(): void {
    const side = this.side;
    const labels = side.labels;
    const n = labels.length;
    fill(this.posSel, range(n).map((q) => ({ value: String(q), text: `${this.state.label(q)} ${labels[q]}` })), String(this.position));
    const target = `position ${this.state.label(this.position)} \u201c${labels[this.position]}\u201d`;
    this.note.textContent = [`${this.what()}: contribution to ${target}; bars = shares of each layer's row`, this.state.hideSpecial ? HIDDEN_NOTE : ""]
      .filter(Boolean)
      .join(" \u00b7 ");
    this.rows.replaceChildren();
    this.rows.setAttribute("aria-label", `Contributions to ${target}, ${this.what()}, one bar per layer.`);
    const tableRows: string[][] = [];
    this.info.layers.forEach((layer, i) => {
      const raw = this.row(i);
      const share = shares(raw, side.special, this.state.hideSpecial);
      const line = el("div", "as-crow", undefined, this.rows);
      el("span", "as-clabel", `Layer ${this.state.label(layer)}`, line);
      const barNode = el("div", "as-cbar", undefined, line);
      share.forEach((s, k) => {
        const seg = el("span", "as-cseg", s >= LABEL_SHARE ? labels[k] : undefined, barNode);
        seg.style.width = `${(s * 100).toFixed(3)}%`;
        seg.style.background = this.info.colours[k];
        seg.dataset.layer = String(i);
        seg.dataset.key = String(k);
        seg.dataset.value = raw[k].toFixed(4);
        seg.dataset.share = s.toFixed(4);
        seg.tabIndex = i === this.cursor.layer && k === this.cursor.key ? 0 : -1;
        const text = this.describe(layer, k, raw[k], s);
        seg.setAttribute("aria-label", text);
        seg.addEventListener("mouseenter", () => this.hover(seg, text));
        seg.addEventListener("focus", () => this.hover(seg, text));
      });
      const top = range(n)
        .sort((a, b) => share[b] - share[a])
        .slice(0, 3)
        .map((k) => `${labels[k]} ${raw[k].toFixed(3)} (${(share[k] * 100).toFixed(1)}%)`);
      tableRows.push([`layer ${this.state.label(layer)}`, ...top]);
    });
    fillTable(this.table, `Inputs reaching ${target} (${this.what()}): strongest per layer`, ["layer", "1st", "2nd", "3rd"], tableRows);
  }

  private describe(layer: number, k: number, value: number, share: number): string {
    const labels = this.side.labels;
    return `layer ${this.state.label(layer)}, input ${this.state.label(k)} \u201c${labels[k]}\u201d: ${this.info.measure} ${value.toFixed(4)}, share ${(share * 100).toFixed(1)}%`;
  }

  private hover(seg: HTMLElement, text: string): void {
    this.caption.textContent = text;
    this.node.dataset.hover = `${seg.dataset.layer},${seg.dataset.key}`;
  }

  private onKey(e: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[e.key];
    if (!move) return;
    e.preventDefault();
    const layers = this.info.layers.length;
    const keys = this.side.labels.length;
    this.cursor = {
      layer: Math.min(layers - 1, Math.max(0, this.cursor.layer + move[0])),
      key: Math.min(keys - 1, Math.max(0, this.cursor.key + move[1])),
    };
    const segs = Array.from(this.rows.querySelectorAll<HTMLElement>(".as-cseg"));
    for (const s of segs) s.tabIndex = -1;
    const next = segs.find((s) => s.dataset.layer === String(this.cursor.layer) && s.dataset.key === String(this.cursor.key));
    if (next) {
      next.tabIndex = 0;
      next.focus();
    }
  }
}
