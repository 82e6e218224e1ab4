// Entry point: render(element, view, data) draws one view (or a page of tabs) into its own root element.
// On load, the bundle renders every attnscope root on the page that is not rendered yet; it defines no globals.

import { STYLE, checkbox, el, fill, select, uid } from "./dom";
import { HeadView } from "./head";
import { HeatmapView } from "./heatmap";
import { ModelView } from "./model";
import { NeuronView } from "./neuron";
import { Payload, checkPayload } from "./payload";
import { PageState } from "./state";

type ViewName = "head" | "model" | "neuron" | "heatmap";
const TITLES: Record<ViewName, string> = { head: "Head view", model: "Model view", neuron: "Neuron view", heatmap: "Heatmap" };

function make(name: ViewName, state: PageState): HTMLElement {
  if (name !== "neuron" && state.stacks.some((s) => s.narrowed)) {
    throw new Error(`this page holds attention for the neuron view only; it cannot show the ${TITLES[name]}`);
  }
  if (name === "head") return new HeadView(state, { controls: true }).node;
  if (name === "model") return new ModelView(state).node;
  if (name === "neuron") return new NeuronView(state).node;
  return new HeatmapView(state).node;
}

/** Draw `view` ("page" = every view in data.views as tabs) of `data` into `element`. */
export async function render(element: HTMLElement, view: ViewName | "page", data: Payload): Promise<void> {
  const t0 = performance.now();
  const payload = checkPayload(data);
  const state = await PageState.decode(payload);
  const names = (view === "page" ? payload.views : [view]) as ViewName[];
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
  el("span", "as-title", `${payload.model.name}`, bar);
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
  if (payload.sides.source.special.some(Boolean) || payload.sides.target?.special.some(Boolean)) {
    checkbox(bar, "Hide delimiter tokens", "as-hide", state.hideSpecial, (on) => {
      state.hideSpecial = on;
      state.changed();
    });
  }
  if (payload.precision === "uint8") {
    el("span", "as-note", "weights stored to \u00b10.002 (1/255 steps)", bar);
  }
  element.dataset.indexBase = String(state.base);
  const built = new Map<ViewName, HTMLElement>();
  const prefix = uid(element.id || "attnscope");
  const tabOf = (name: ViewName) => tabs.querySelector<HTMLElement>(`[data-tab="${name}"]`);
  const show = (name: ViewName) => {
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
      pane.appendChild(make(name, state));
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
    const b = el("button", "as-tab", TITLES[name], tabs);
    b.type = "button";
    b.id = `${prefix}-tab-${name}`;
    b.setAttribute("role", "tab");
    b.dataset.tab = name;
    b.addEventListener("click", () => show(name));
  }
  tabs.addEventListener("keydown", (e) => {
    const at = names.indexOf(element.dataset.active as ViewName);
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

function renderPending(): void {
  const roots = document.querySelectorAll<HTMLElement>("div.attnscope-root[data-attnscope-state=pending]");
  for (const root of Array.from(roots)) {
    root.dataset.attnscopeState = "rendering";
    const block = root.querySelector<HTMLScriptElement>("script[type='application/json']");
    const view = (root.dataset.attnscopeView ?? "page") as ViewName | "page";
    Promise.resolve()
      .then(() => render(root, view, JSON.parse(block?.textContent ?? "null") as Payload))
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

renderPending();
