// Atlas view: the layers x heads grid of a head atlas. Each cell is a button coloured by the head's role
// (one colour per role, legend above) at an intensity set by its score; hover or focus shows its numbers;
// a role filter dims other heads; a toggle sorts heads by score within each layer; arrows move between
// cells; a click (Enter, Space) opens the head view of that layer and head on its example sentence.

import { checkbox, el, fill, fillTable, keepFocus, select, themeColors, uid } from "./dom";
import { AtlasHead, AtlasPayload } from "./contract";
import { HeadView } from "./head";
import { PageState } from "./state";

const CSS = `
.attnscope-root .as-atlas-legend{display:flex;flex-wrap:wrap;gap:4px 12px;margin:4px 0;font-size:12px}
.attnscope-root .as-atlas-swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid var(--as-line)}
.attnscope-root .as-atlas-grid{display:inline-grid;gap:2px;align-items:center}
.attnscope-root .as-atlas-cell{width:40px;height:26px;padding:0;border:2px solid transparent;border-radius:2px;cursor:pointer;font-size:10px;font-variant-numeric:tabular-nums}
.attnscope-root .as-atlas-cell.as-dim{opacity:.15}
.attnscope-root .as-atlas-cell[aria-expanded=true]{border-color:var(--as-focus)}
.attnscope-root .as-atlas-info{min-height:3.2em;font-size:12px;font-variant-numeric:tabular-nums;margin:6px 0;white-space:pre-wrap}
.attnscope-root .as-atlas-example{border:1px solid var(--as-focus);padding:6px;margin:6px 0}
.attnscope-root .as-atlas-text{white-space:pre-wrap;unicode-bidi:plaintext}
`;

const STATS: [string, string][] = [
  ["first", "first"], ["sep", "sep"], ["punct", "punct"], ["self", "self"], ["previous", "prev"], ["next", "next"],
  ["entropy", "entropy"], ["max_weight", "confidence"], ["distance", "distance"],
];

/** `#rrggbb` blended over `bg` with weight t (0 = background, 1 = the colour). */
export function blend(hex: string, bg: string, t: number): string {
  const p = (h: string, i: number) => parseInt(h.slice(1 + 2 * i, 3 + 2 * i), 16);
  const mix = [0, 1, 2].map((i) => Math.round(p(bg, i) * (1 - t) + p(hex, i) * t));
  return `rgb(${mix.join(",")})`;
}

/** Relative brightness (0..1) of an rgb(r,g,b) colour, to pick black or white text on it (as the PNG does). */
export function luminance(rgb: string): number {
  const [r, g, b] = (rgb.match(/\d+/g) ?? ["0", "0", "0"]).map(Number);
  return (0.299 * r + 0.587 * g + 0.114 * b) / 255;
}

/** The intensity of a score (as in the PNG/SVG): 25 % at score 0 up to 100 % at score 1. */
export function intensity(score: number | null): number {
  return score === null ? 0.25 : 0.25 + 0.75 * Math.min(1, Math.max(0, score));
}

function num(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined ? "–" : v.toFixed(digits);
}

export class AtlasView {
  readonly node: HTMLElement;
  private readonly atlas: AtlasPayload;
  private readonly grid: HTMLDivElement;
  private readonly info: HTMLDivElement;
  private readonly example: HTMLDivElement;
  private readonly table: HTMLTableElement;
  private readonly legendBox: HTMLDivElement;
  private role = "";
  private sorted = false;
  private focus: [number, number] = [0, 0];
  private open: [number, number] | null = null;
  private closeExample: (() => void) | null = null;

  constructor(private readonly state: PageState) {
    const atlas = state.payload.atlas;
    if (!atlas) throw new Error("this page holds no head atlas");
    this.atlas = atlas;
    this.node = el("div", "as-atlasview");
    this.node.dataset.view = "atlas";
    el("style", undefined, CSS, this.node);
    const bar = el("div", "as-bar", undefined, this.node);
    const roleSel = select(bar, "Role", "as-atlas-role", (v) => {
      this.role = v;
      keepFocus(this.node, () => this.draw());
    });
    fill(roleSel, [{ value: "", text: "all roles" }, ...atlas.roles.map((r) => ({ value: r, text: r }))], "");
    checkbox(bar, "Sort heads by score within each layer", "as-atlas-sort", false, (on) => {
      this.sorted = on;
      keepFocus(this.node, () => this.draw());
    });
    el("span", "as-note", `${atlas.sentences} sentences · ${atlas.stack} attention · click a head to open its example`, bar);
    this.legendBox = el("div", "as-atlas-legend", undefined, this.node);
    this.legendBox.setAttribute("aria-label", "Roles");
    this.grid = el("div", "as-atlas-grid", undefined, this.node);
    this.grid.setAttribute("role", "group");
    this.grid.setAttribute("aria-label", "Heads by layer: role and score");
    this.grid.addEventListener("keydown", (e) => this.key(e));
    this.info = el("div", "as-atlas-info", "Hover or focus a head for its numbers.", this.node);
    this.info.setAttribute("aria-live", "polite");
    this.example = el("div", "as-atlas-example", undefined, this.node);
    this.example.id = uid("as-atlas-example");
    this.example.style.display = "none";
    this.table = el("table", "as-sr", undefined, this.node);
    state.subscribe(() => keepFocus(this.node, () => this.draw()));
    this.draw();
  }

  private get heads(): AtlasHead[][] {
    return this.atlas.heads;
  }

  private colour(role: string): string {
    const i = this.atlas.roles.indexOf(role);
    return i >= 0 ? this.atlas.role_colours[i] : "#7f7f7f";
  }

  /** The heads of a layer in the order shown (by score, best first, when sorted). */
  order(layer: number): number[] {
    const ids = this.heads[layer].map((_, h) => h);
    if (!this.sorted) return ids;
    const s = (h: number) => this.heads[layer][h].score ?? -1;
    return ids.sort((a, b) => s(b) - s(a) || a - b);
  }

  private label(layer: number, head: number): string {
    const h = this.heads[layer][head];
    return `layer ${this.state.label(layer)} head ${this.state.label(head)}: ${h.role}, score ${num(h.score)}`;
  }

  private draw(): void {
    const bg = themeColors(this.state.theme).bg;
    this.legendBox.replaceChildren();
    this.atlas.roles.forEach((r, i) => {
      const item = el("span", "as-atlas-role-item", undefined, this.legendBox);
      item.dataset.role = r;
      el("span", "as-atlas-swatch", undefined, item).style.background = this.atlas.role_colours[i];
      el("span", undefined, r, item);
    });
    const nHeads = this.heads[0].length;
    this.grid.style.gridTemplateColumns = `auto repeat(${nHeads}, auto)`;
    this.grid.replaceChildren();
    el("div", "as-glabel", this.sorted ? "layer \\ rank" : "layer \\ head", this.grid);
    for (let i = 0; i < nHeads; i++) el("div", "as-glabel", this.sorted ? String(i + 1) : this.state.label(i), this.grid);
    const rows: string[][] = [];
    this.heads.forEach((row, layer) => {
      el("div", "as-glabel", this.state.label(layer), this.grid);
      this.order(layer).forEach((head, col) => {
        const h = row[head];
        const b = el("button", "as-atlas-cell", this.sorted ? this.state.label(head) : num(h.score), this.grid);
        b.type = "button";
        b.dataset.layer = String(layer);
        b.dataset.head = String(head);
        b.dataset.col = String(col);
        b.dataset.role = h.role;
        b.dataset.focusKey = `cell-${layer}-${col}`;
        const t = intensity(h.score);
        const fill = blend(this.colour(h.role), bg, t);
        b.style.background = fill;
        b.style.color = luminance(fill) > 0.55 ? "#000" : "#fff";
        b.setAttribute("aria-label", this.label(layer, head));
        b.title = this.label(layer, head);
        b.tabIndex = layer === this.focus[0] && col === this.focus[1] ? 0 : -1;
        b.setAttribute("aria-expanded", String(this.open !== null && this.open[0] === layer && this.open[1] === head));
        b.setAttribute("aria-controls", this.example.id);
        if (this.role && h.role !== this.role) b.classList.add("as-dim");
        b.addEventListener("mouseenter", () => this.describe(layer, head));
        b.addEventListener("focus", () => {
          this.focus = [layer, col];
          this.describe(layer, head);
        });
        b.addEventListener("click", () => this.openHead(layer, head));
        rows.push([`${this.state.label(layer)}`, this.state.label(head), h.role, num(h.score)]);
      });
    });
    fillTable(this.table, `Head atlas of ${this.atlas.model}: role and score of every head`, ["layer", "head", "role", "score"], rows);
  }

  /** The numbers of one head, in the info line (hover or focus). */
  describe(layer: number, head: number): void {
    const h = this.heads[layer][head];
    const stats = STATS.map(([k, name]) => `${name} ${num(h.stats[k], k === "distance" || k === "entropy" ? 2 : 3)}`).join(" · ");
    const types = Object.entries(h.patterns).map(([k, v]) => `${k} ${num(v)}`).join(" · ");
    this.info.textContent =
      `Layer ${this.state.label(layer)}, head ${this.state.label(head)}: ${h.role} (score ${num(h.score, 3)})\n` +
      `${stats}\nKovaleva types: ${types || "–"}`;
    this.info.dataset.layer = String(layer);
    this.info.dataset.head = String(head);
  }

  private key(e: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[e.key];
    if (!move && e.key !== "Home" && e.key !== "End") return;
    e.preventDefault();
    const nLayers = this.heads.length;
    const nHeads = this.heads[0].length;
    let [layer, col] = this.focus;
    if (move) {
      layer = Math.min(nLayers - 1, Math.max(0, layer + move[0]));
      col = Math.min(nHeads - 1, Math.max(0, col + move[1]));
    } else col = e.key === "Home" ? 0 : nHeads - 1;
    this.focus = [layer, col];
    for (const b of Array.from(this.grid.querySelectorAll<HTMLElement>(".as-atlas-cell"))) {
      const here = b.dataset.layer === String(layer) && b.dataset.col === String(col);
      b.tabIndex = here ? 0 : -1;
      if (here) b.focus();
    }
  }

  /** Open the head view of <layer, head> on the sentence where its role is strongest. */
  openHead(layer: number, head: number): void {
    const h = this.heads[layer][head];
    this.closeExample?.();
    this.closeExample = null;
    this.open = [layer, head];
    this.example.style.display = "";
    this.example.dataset.layer = String(layer);
    this.example.dataset.head = String(head);
    const title = () => `Layer ${this.state.label(layer)}, head ${this.state.label(head)}: ${h.role}`;
    const ex = h.example >= 0 ? this.atlas.examples[h.example] : undefined;
    if (!ex) {
      const note = () => `${title()}. No example sentence in this page (pass the model or traces to atlas_view).`;
      const p = el("p", "as-note", note());
      this.example.replaceChildren(p);
      this.example.dataset.example = "";
      this.closeExample = this.state.subscribe(() => (p.textContent = note()));
      this.markOpen();
      return;
    }
    this.example.dataset.example = String(ex.index);
    const captionText = () =>
      `${title()} — strongest on corpus sentence ${this.state.label(ex.index)} (${num(h.example_score, 3)}):`;
    const caption = el("p", "as-caption", captionText());
    const text = el("p", "as-atlas-text", ex.text + (ex.text_pair ? ` ‖ ${ex.text_pair}` : ""));
    const holder = el("div", "as-atlas-head");
    this.example.replaceChildren(caption, text, holder);
    const payload = { ...ex.payload, resolved: { ...ex.payload.resolved, layer, heads: [head] } };
    const mine = this.open;
    PageState.decode(payload).then(
      (sub) => {
        if (this.open !== mine) return; // another head was opened meanwhile
        const sync = () => {
          caption.textContent = captionText();
          sub.base = this.state.base;
          sub.theme = this.state.theme;
          sub.changed();
        };
        sync();
        const view = new HeadView(sub, { controls: true, layer, heads: [head] });
        holder.appendChild(view.node);
        this.closeExample = this.state.subscribe(sync);
        this.example.dataset.ready = "true";
      },
      (err: unknown) => {
        holder.replaceChildren(el("div", "as-error", `attnscope could not draw this head: ${String(err)}`));
        console.error(err);
      },
    );
    this.example.dataset.ready = "false";
    this.markOpen();
  }

  private markOpen(): void {
    for (const b of Array.from(this.grid.querySelectorAll<HTMLElement>(".as-atlas-cell"))) {
      const on = this.open !== null && b.dataset.layer === String(this.open[0]) && b.dataset.head === String(this.open[1]);
      b.setAttribute("aria-expanded", String(on));
    }
  }
}
