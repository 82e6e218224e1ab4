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

// d3's category10, as BertViz colours heads.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

export function headColor(head: number): string {
  return PALETTE[head % PALETTE.length];
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

export function cssVar(node: HTMLElement, name: string): string {
  return getComputedStyle(node).getPropertyValue(name).trim() || "#888";
}

export const STYLE = `
.attnscope-root{--as-bg:#1e1e1e;--as-fg:#e6e6e6;--as-dim:#8a8a8a;--as-line:#444;--as-hi:#2b4a6b;
 font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--as-fg);background:var(--as-bg);padding:8px;border-radius:4px}
.attnscope-root.as-light{--as-bg:#ffffff;--as-fg:#1a1a1a;--as-dim:#777;--as-line:#ddd;--as-hi:#d8e8f8}
.attnscope-root *{box-sizing:border-box}
.attnscope-root .as-bar{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:4px 0 8px}
.attnscope-root .as-ctl{display:inline-flex;gap:4px;align-items:center}
.attnscope-root select,.attnscope-root button{font:inherit;color:var(--as-fg);background:var(--as-bg);border:1px solid var(--as-line);border-radius:3px;padding:1px 4px}
.attnscope-root .as-tabs{display:flex;gap:2px;border-bottom:1px solid var(--as-line);margin-bottom:6px}
.attnscope-root .as-tab{border-bottom:none;border-radius:3px 3px 0 0;cursor:pointer}
.attnscope-root .as-tab[aria-selected=true]{background:var(--as-hi)}
.attnscope-root .as-heads{display:flex;flex-wrap:wrap;gap:3px}
.attnscope-root .as-head{width:20px;height:16px;border:2px solid transparent;cursor:pointer;font-size:10px;text-align:center;color:#fff;line-height:12px}
.attnscope-root .as-head[aria-pressed=false]{opacity:.25}
.attnscope-root .as-scroll{overflow:auto;position:relative;border:1px solid var(--as-line)}
.attnscope-root .as-sticky{position:sticky;top:0;left:0;display:block}
.attnscope-root .as-note,.attnscope-root .as-caption{color:var(--as-dim);margin:4px 0;unicode-bidi:plaintext}
.attnscope-root .as-tok{unicode-bidi:isolate;white-space:pre}
.attnscope-root .as-grid{display:inline-grid;gap:4px;align-items:center}
.attnscope-root .as-thumb{cursor:pointer;border:1px solid var(--as-line)}
.attnscope-root .as-thumb:hover{border-color:var(--as-fg)}
.attnscope-root .as-glabel{color:var(--as-dim);font-size:11px;text-align:center}
.attnscope-root .as-toggles button[aria-pressed=false]{opacity:.4;text-decoration:line-through}
.attnscope-root .as-detail{border:1px solid var(--as-line);padding:6px;margin:6px 0}
.attnscope-root .as-qlist{display:flex;flex-wrap:wrap;gap:2px 4px;margin:4px 0;max-height:120px;overflow:auto}
.attnscope-root .as-qlist span{cursor:pointer;padding:0 2px;border-radius:2px}
.attnscope-root .as-qlist span[aria-selected=true]{background:var(--as-hi)}
.attnscope-root .as-ntable{display:grid;column-gap:8px;align-items:center;font-variant-numeric:tabular-nums}
.attnscope-root .as-ntable div{height:16px;white-space:pre;overflow:hidden}
.attnscope-root .as-num{text-align:right}
.attnscope-root .as-hdr{color:var(--as-dim);font-size:11px}
.attnscope-root .as-error{color:#e55}
`;
