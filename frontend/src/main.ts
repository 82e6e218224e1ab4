// The bundle's entry. It defines one global, `attnscope`, whose documented entry is
//   attnscope.render(element, payload): Promise<void>
// which draws the payload's views (tabs when there are several) into `element`. On load the bundle
// renders every pending view root of its contract version in the document (a root is a
// div.attnscope-root[data-attnscope-state=pending] holding its payload in a JSON script block) and
// wires data-attnscope-open links (see links.ts). Loading the same bundle again only renders the roots
// still pending, so a document may hold it several times, or once for many roots (notebooks).

import { STYLE, checkbox, el, fill, select, uid } from "./dom";
import { installKeys } from "./keys";
import { installLinks } from "./links";
import { PAYLOAD_VERSION, Payload, checkPayload } from "./payload";
import { VIEWS, makeView } from "./registry";
import { PageState } from "./state";

/** Draw every view in `data.views` (as tabs when more than one) into `element`. */
export async function render(element: HTMLElement, data: Payload): Promise<void> {
  const t0 = performance.now();
  const payload = checkPayload(data);
  const state = await PageState.decode(payload);
  const names = payload.views;
  element.classList.add("attnscope-root");
  const style = el("style", undefined, STYLE);
  const bar = el("div", "as-bar as-page-bar");
  const tabs = el("div", "as-tabs");
  const panes = el("div", "as-panes");
  element.replaceChildren(style, bar, tabs, panes);
  // A standalone page (body.attnscope-page, from View.to_html) follows the theme too.
  const page = element.ownerDocument.body.classList.contains("attnscope-page") ? element.ownerDocument.body : null;
  const applyTheme = () => {
    for (const node of page ? [element, page] : [element]) {
      node.classList.toggle("as-light", state.theme === "light");
      node.classList.toggle("as-dark", state.theme === "dark");
    }
  };
  applyTheme();
  const titleNode = el("span", "as-title", undefined, bar);
  const retitle = () => {
    const value = state.valueName();
    titleNode.textContent = value === "attention" ? payload.model.name : `${payload.model.name} \u00b7 ${value}`;
    element.dataset.measure = state.measure;
  };
  retitle();
  const baseSel = select(bar, "Numbering", "as-base", (v) => {
    state.base = Number(v);
    element.dataset.indexBase = v;
    state.changed();
  });
  fill(baseSel, [{ value: "0", text: "0-based (BertViz)" }, { value: "1", text: "1-based (exBERT)" }], String(state.base));
  const themeSel = select(bar, "Theme", "as-theme", (v) => {
    state.theme = v === "light" ? "light" : "dark";
    applyTheme();
    state.changed();
  });
  fill(themeSel, [{ value: "dark", text: "Dark" }, { value: "light", text: "Light" }], state.theme);
  if (payload.sides.source?.special.some(Boolean) || payload.sides.target?.special.some(Boolean)) {
    checkbox(bar, "Hide delimiter tokens", "as-hide", state.hideSpecial, (on) => {
      state.hideSpecial = on;
      state.changed();
    });
  }
  const measures = state.measureNames;
  if (measures.length > 1) {
    // Switching the measure rebuilds the views: a head-less measure has one "all heads" pseudo-head.
    const measureSel = select(bar, "Measure", "as-measure", (v) => {
      state.setMeasure(v);
      retitle();
      const active = element.dataset.active ?? names[0];
      for (const pane of built.values()) pane.remove();
      built.clear();
      show(active);
    });
    fill(measureSel, measures.map((m) => ({ value: m, text: m === "attention" ? "Attention (raw)" : m.replace(/_/g, " ") })), state.measure);
  }
  if (payload.precision === "uint8") {
    el("span", "as-note", "weights stored to \u00b10.002 (1/255 steps)", bar);
  }
  element.dataset.indexBase = String(state.base);
  const built = new Map<string, HTMLElement>();
  const prefix = uid(element.id || "attnscope");
  const tabOf = (name: string) => tabs.querySelector<HTMLElement>(`[data-tab="${name}"]`);
  const show = (name: string) => {
    for (const [n, pane] of built) pane.style.display = n === name ? "" : "none";
    if (!built.has(name)) {
      const pane = el("div", "as-pane", undefined, panes);
      pane.dataset.pane = name;
      if (names.length > 1) {
        pane.id = `${prefix}-pane-${name}`;
        pane.setAttribute("role", "tabpanel");
        pane.setAttribute("aria-labelledby", `${prefix}-tab-${name}`);
        tabOf(name)?.setAttribute("aria-controls", pane.id);
      }
      pane.appendChild(makeView(name, state));
      built.set(name, pane);
    }
    for (const b of Array.from(tabs.children) as HTMLElement[]) {
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
      b.tabIndex = b.dataset.tab === name ? 0 : -1; // one Tab stop; arrow keys move between tabs
    }
    element.dataset.active = name;
  };
  tabs.style.display = names.length > 1 ? "" : "none";
  tabs.setAttribute("role", "tablist");
  tabs.setAttribute("aria-label", "Views");
  for (const name of names) {
    const title = (VIEWS as Record<string, { title: string } | undefined>)[name]?.title ?? name;
    const b = el("button", "as-tab", title, tabs);
    b.type = "button";
    b.id = `${prefix}-tab-${name}`;
    b.setAttribute("role", "tab");
    b.dataset.tab = name;
    b.addEventListener("click", () => show(name));
  }
  tabs.addEventListener("keydown", (e) => {
    const at = names.indexOf(element.dataset.active ?? "");
    const moves: Record<string, number> = { ArrowRight: at + 1, ArrowLeft: at - 1 + names.length, Home: 0, End: names.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    const next = names[moves[e.key] % names.length];
    show(next);
    tabOf(next)?.focus();
  });
  show(names[0]);
  element.dataset.renderMs = (performance.now() - t0).toFixed(1);
}

/** Render every pending root of this contract version in the document (roots of another version wait for theirs). */
export function renderPending(): void {
  const roots = document.querySelectorAll<HTMLElement>("div.attnscope-root[data-attnscope-state=pending]");
  for (const root of Array.from(roots)) {
    const version = root.dataset.attnscopeVersion;
    if (version !== undefined && version !== String(PAYLOAD_VERSION)) continue;
    root.dataset.attnscopeState = "rendering";
    const block = root.querySelector<HTMLScriptElement>("script[type='application/json']");
    Promise.resolve()
      .then(() => render(root, JSON.parse(block?.textContent ?? "null") as Payload))
      .then(() => {
        root.dataset.readyAt = performance.now().toFixed(1); // ms since the page started loading
        root.dataset.attnscopeState = "ready";
      })
      .catch((err: unknown) => {
        root.dataset.attnscopeState = "error";
        root.replaceChildren(el("div", "as-error", `attnscope could not draw this view: ${String(err)}`));
        console.error(err);
      });
  }
}

/** What the global `attnscope` holds. */
export interface Api {
  version: number;
  key: string;
  render: typeof render;
  renderPending: typeof renderPending;
}

declare global {
  interface Window {
    attnscope?: Api;
  }
}

function install(): void {
  const key = (document.currentScript as HTMLScriptElement | null)?.dataset.attnscopeBundle ?? "";
  const existing = window.attnscope;
  if (existing && existing.version === PAYLOAD_VERSION && existing.key === key) {
    existing.renderPending(); // the same bundle again: nothing to define
    return;
  }
  window.attnscope = { version: PAYLOAD_VERSION, key, render, renderPending };
  if (!existing) {
    installLinks(document, (element, payload) => window.attnscope!.render(element, payload));
    installKeys(window);
  }
  renderPending();
}

install();
