// Small DOM helpers: every piece of text goes in through textContent, never as markup.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string,
  parent?: HTMLElement,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

export interface Choice {
  value: string;
  text: string;
}

/** A labelled <select>; returns the element so callers can refill or read it. */
export function select(parent: HTMLElement, label: string, cls: string, onChange: (v: string) => void): HTMLSelectElement {
  const wrap = el("label", "as-ctl", undefined, parent);
  el("span", undefined, label, wrap);
  const sel = el("select", cls, undefined, wrap);
  sel.addEventListener("change", () => onChange(sel.value));
  return sel;
}

export function fill(sel: HTMLSelectElement, choices: Choice[], value: string): void {
  sel.replaceChildren(
    ...choices.map((c) => {
      const o = document.createElement("option");
      o.value = c.value;
      o.textContent = c.text;
      return o;
    }),
  );
  sel.value = value;
}

export function checkbox(parent: HTMLElement, label: string, cls: string, on: boolean, onChange: (v: boolean) => void): HTMLInputElement {
  const wrap = el("label", "as-ctl", undefined, parent);
  const box = el("input", cls, undefined, wrap);
  box.type = "checkbox";
  box.checked = on;
  box.addEventListener("change", () => onChange(box.checked));
  el("span", undefined, label, wrap);
  return box;
}

/** Blue for positive, orange for negative, alpha = |v| / max (the book's neuron-view colours). */
export function signedColor(v: number, max: number): string {
  const a = max > 0 ? Math.min(1, Math.abs(v) / max) : 0;
  return v >= 0 ? `rgba(31,119,180,${a.toFixed(3)})` : `rgba(255,127,14,${a.toFixed(3)})`;
}

/** A canvas sized for the device pixel ratio; returns its 2D context scaled to CSS pixels. */
export function sizeCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2D canvas context");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** The colours of each theme: one source for the page's CSS and for what the views paint on canvases. */
export interface Colors {
  bg: string;
  fg: string;
  dim: string;
  line: string;
  hi: string;
  focus: string;
}

export const THEMES: Record<"dark" | "light", Colors> = {
  dark: { bg: "#1e1e1e", fg: "#e6e6e6", dim: "#8a8a8a", line: "#444444", hi: "#2b4a6b", focus: "#6cb6ff" },
  light: { bg: "#ffffff", fg: "#1a1a1a", dim: "#6b6b6b", line: "#dddddd", hi: "#d8e8f8", focus: "#0a66c2" },
};

/** Canvas colours come from the theme, not from computed style: a view paints before it is in the document. */
export function themeColors(theme: string): Colors {
  return THEMES[theme === "light" ? "light" : "dark"];
}

const fitted = new Map<string, string>();

/** `text` cut to fit `width` pixels in the context's current font, ending in an ellipsis when cut. */
export function fitText(ctx: CanvasRenderingContext2D, text: string, width: number): string {
  const key = `${ctx.font}\u0000${Math.round(width)}\u0000${text}`;
  const hit = fitted.get(key);
  if (hit !== undefined) return hit;
  let out = text;
  if (ctx.measureText(text).width > width) {
    const chars = Array.from(text); // whole code points, never half a surrogate pair
    let lo = 0;
    let hi = chars.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (ctx.measureText(chars.slice(0, mid).join("") + "\u2026").width <= width) lo = mid;
      else hi = mid - 1;
    }
    out = chars.slice(0, lo).join("") + "\u2026";
  }
  if (fitted.size > 20000) fitted.clear();
  fitted.set(key, out);
  return out;
}

/**
 * Run `rebuild` (which replaces elements inside `scope`) and give focus back to the element that has the
 * same `data-focus-key` as the one focused before, so a redraw never drops keyboard focus to the page.
 */
export function keepFocus(scope: HTMLElement, rebuild: () => void): void {
  const active = scope.ownerDocument.activeElement;
  const key = active instanceof HTMLElement && scope.contains(active) ? active.dataset.focusKey : undefined;
  rebuild();
  if (key === undefined || scope.contains(scope.ownerDocument.activeElement)) return;
  for (const node of Array.from(scope.querySelectorAll<HTMLElement>("[data-focus-key]"))) {
    if (node.dataset.focusKey === key) {
      node.focus({ preventScroll: true });
      return;
    }
  }
}

let ids = 0;

/** A fresh element id for ARIA references inside the live page (never part of the saved HTML). */
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** Fill a visually hidden table (a canvas's text alternative) with a caption, column heads and rows. */
export function fillTable(table: HTMLTableElement, caption: string, heads: string[], rows: string[][]): void {
  const cap = el("caption", undefined, caption);
  const thead = el("thead");
  const tr = el("tr", undefined, undefined, thead);
  for (const h of heads) el("th", undefined, h, tr).setAttribute("scope", "col");
  const tbody = el("tbody");
  for (const row of rows) {
    const r = el("tr", undefined, undefined, tbody);
    row.forEach((text, i) => {
      const c = el(i === 0 ? "th" : "td", undefined, text, r);
      if (i === 0) c.setAttribute("scope", "row");
    });
  }
  table.replaceChildren(cap, thead, tbody);
}

/** A colour scale: a titled gradient bar with its end (and middle) values written under it. */
export function legend(parent: HTMLElement, title: string, gradient: string, ticks: string[]): HTMLElement {
  const box = el("div", "as-legend", undefined, parent);
  el("span", "as-legend-title", title, box);
  const scale = el("span", "as-legend-scale", undefined, box);
  const bar = el("span", "as-legend-bar", undefined, scale);
  bar.style.background = gradient;
  bar.setAttribute("aria-hidden", "true");
  const marks = el("span", "as-legend-ticks", undefined, scale);
  for (const t of ticks) el("span", undefined, t, marks);
  return box;
}

const vars = (c: Colors) => `--as-bg:${c.bg};--as-fg:${c.fg};--as-dim:${c.dim};--as-line:${c.line};--as-hi:${c.hi};--as-focus:${c.focus}`;

export const STYLE = `
.attnscope-root{${vars(THEMES.dark)};
 font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--as-fg);background:var(--as-bg);padding:8px;border-radius:4px;
 max-width:100%;overflow-x:auto}
.attnscope-root.as-light{${vars(THEMES.light)}}
body.attnscope-page.as-dark{background:${THEMES.dark.bg}}
body.attnscope-page.as-light{background:${THEMES.light.bg}}
.attnscope-root :focus-visible{outline:2px solid var(--as-focus);outline-offset:1px}
.attnscope-root .as-crow{display:flex;align-items:center;gap:8px;margin:3px 0}
.attnscope-root .as-clabel{width:64px;flex:none;text-align:right;color:var(--as-fg)}
.attnscope-root .as-cbar{display:flex;flex:1;max-width:900px;height:22px;border:1px solid var(--as-line);overflow:hidden}
.attnscope-root .as-cseg{display:block;height:100%;overflow:hidden;white-space:nowrap;text-align:center;font-size:11px;line-height:22px;color:#fff;unicode-bidi:plaintext}
.attnscope-root .as-cseg:hover,.attnscope-root .as-cseg:focus{outline:2px solid var(--as-focus);outline-offset:-2px}
.attnscope-root .as-sr{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.attnscope-root *{box-sizing:border-box}
.attnscope-root .as-bar{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:4px 0 8px}
.attnscope-root .as-ctl{display:inline-flex;gap:4px;align-items:center}
.attnscope-root select,.attnscope-root button{font:inherit;color:var(--as-fg);background:var(--as-bg);border:1px solid var(--as-line);border-radius:3px;padding:1px 4px}
.attnscope-root .as-tabs{display:flex;gap:2px;border-bottom:1px solid var(--as-line);margin-bottom:6px}
.attnscope-root .as-tab{border-bottom:none;border-radius:3px 3px 0 0;cursor:pointer}
.attnscope-root .as-tab[aria-selected=true]{background:var(--as-hi)}
.attnscope-root .as-heads{display:flex;flex-wrap:wrap;gap:3px;align-items:center}
.attnscope-root .as-head{width:22px;height:18px;padding:0;border:2px solid transparent;cursor:pointer;font-size:10px;text-align:center;color:#fff;line-height:12px}
.attnscope-root .as-head[aria-pressed=false]{opacity:.25}
.attnscope-root .as-heads .as-allnone{font-size:11px;padding:0 5px;height:18px}
.attnscope-root .as-scroll{overflow:auto;position:relative;border:1px solid var(--as-line)}
.attnscope-root .as-sticky{position:sticky;top:0;left:0;display:block}
.attnscope-root .as-note,.attnscope-root .as-caption{color:var(--as-dim);margin:4px 0;unicode-bidi:plaintext}
.attnscope-root .as-caption.as-empty{color:var(--as-fg)}
.attnscope-root .as-tok{unicode-bidi:isolate;white-space:pre}
.attnscope-root .as-frame{overflow:auto;max-width:100%;max-height:85vh}
.attnscope-root .as-grid .as-ghead{position:sticky;top:0;z-index:2;background:var(--as-bg);align-self:stretch;padding:2px 0}
.attnscope-root .as-grid .as-gside{position:sticky;left:0;z-index:1;background:var(--as-bg);align-self:stretch;display:flex;align-items:center;padding:0 4px}
.attnscope-root .as-grid .as-ghead.as-gside{z-index:3}
.attnscope-root .as-grid{display:inline-grid;gap:4px;align-items:center}
.attnscope-root .as-thumbbtn{padding:0;border:2px solid transparent;background:none;cursor:pointer;line-height:0;border-radius:2px}
.attnscope-root .as-thumb{border:1px solid var(--as-line)}
.attnscope-root .as-thumbbtn:hover .as-thumb{border-color:var(--as-fg)}
.attnscope-root .as-thumbbtn[aria-expanded=true]{border-color:var(--as-focus)}
.attnscope-root .as-glabel{color:var(--as-dim);font-size:11px;text-align:center;white-space:nowrap}
.attnscope-root .as-toggles button[aria-pressed=false]{opacity:.4;text-decoration:line-through}
.attnscope-root .as-detail{border:1px solid var(--as-focus);padding:6px;margin:2px 0 6px;grid-column:1 / -1;line-height:1.35}
.attnscope-root .as-qlist{display:flex;flex-wrap:wrap;gap:2px 4px;margin:4px 0;padding:3px;max-height:120px;overflow:auto}
.attnscope-root .as-qlist [role=option]:focus-visible{outline-offset:-1px}
.attnscope-root .as-qlist [role=option]{cursor:pointer;padding:0 2px;border-radius:2px;max-width:16em;overflow:hidden;text-overflow:ellipsis}
.attnscope-root .as-qlist [aria-selected=true]{background:var(--as-hi)}
.attnscope-root .as-ncols{display:flex;align-items:flex-start;gap:10px;max-height:70vh;overflow:auto;position:relative}
.attnscope-root .as-ncols .as-hdr{position:sticky;top:0;z-index:1;background:var(--as-bg);white-space:nowrap}
.attnscope-root .as-ntok div{max-width:14em;overflow:hidden;text-overflow:ellipsis}
.attnscope-root .as-ntable{display:grid;column-gap:8px;align-items:center;font-variant-numeric:tabular-nums}
.attnscope-root .as-ntable div{height:16px;white-space:pre;overflow:hidden}
.attnscope-root .as-num{text-align:right}
.attnscope-root .as-hdr{color:var(--as-dim);font-size:11px}
.attnscope-root .as-legends{display:flex;flex-wrap:wrap;gap:4px 18px;align-items:flex-start;margin:4px 0}
.attnscope-root .as-legend{display:inline-flex;gap:6px;align-items:flex-start;font-size:11px;color:var(--as-dim)}
.attnscope-root .as-legend-scale{display:inline-flex;flex-direction:column;width:160px}
.attnscope-root .as-legend-bar{display:block;height:10px;border:1px solid var(--as-line)}
.attnscope-root .as-legend-ticks{display:flex;justify-content:space-between;font-variant-numeric:tabular-nums}
.attnscope-root .as-axis{color:var(--as-dim);font-size:11px;text-align:center}
.attnscope-root .as-hmap{display:grid;grid-template-columns:auto auto;align-items:center;gap:2px 4px;justify-content:start}
.attnscope-root .as-axis-y{writing-mode:vertical-rl;transform:rotate(180deg);text-align:center}
.attnscope-root .as-error{color:#e55}
`;
