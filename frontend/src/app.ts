// The app page (attnscope serve): type sentence A (and B), pick a served model, see the views; click tokens to
// mask them and see the attention change (original vs edited) and the model's predictions; search a corpus
// index by the context of one token. Every view is drawn by the views bundle's attnscope.render(element,
// payload), loaded before this script; all data comes from the page's own server (app-api.ts). Anything the
// user or the corpus wrote goes in as text (textContent), never as markup.

import { ApiError, ModelsAnswer, SearchAnswer, TraceAnswer, TraceQuestion, call } from "./app-api";
import { predictionsView } from "./app-predict";
import { searchResults } from "./app-search";
import type { Payload } from "./contract";
import { el } from "./dom";

interface AppState {
  models: ModelsAnswer;
  model: string;
  text: string;
  pair: string;
  mask: number[];
  tokens: string[];
  labels: string[];
  special: boolean[];
  layers: number;
  heads: number;
  base: number;
  searchToken: number | null;
  seq: number;
}

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page lacks #${id}`);
  return node as T;
}

const state: AppState = {
  models: { models: [], indexes: [] },
  model: "",
  text: "",
  pair: "",
  mask: [],
  tokens: [],
  labels: [],
  special: [],
  layers: 0,
  heads: 0,
  base: 0,
  searchToken: null,
  seq: 0,
};

function status(text: string): void {
  byId("as-status").textContent = text;
}

function showError(err: unknown): void {
  const box = byId("as-error");
  box.textContent = err instanceof ApiError ? err.message : `error: ${String(err)}`;
  box.hidden = false;
  status("");
  document.body.dataset.appState = "error";
}

function clearError(): void {
  const box = byId("as-error");
  box.textContent = "";
  box.hidden = true;
}

async function draw(target: HTMLElement, payload: Payload): Promise<void> {
  payload.resolved.index_base = state.base;
  const api = window.attnscope;
  if (!api) throw new Error("the views bundle (/static/attnscope.js) did not load");
  await api.render(target, payload);
}

function mode(): "mask" | "search" {
  return byId<HTMLInputElement>("as-click-search").checked ? "search" : "mask";
}

function renderTokens(): void {
  const box = byId("as-tokens");
  box.replaceChildren();
  const searching = mode() === "search";
  state.tokens.forEach((tok, i) => {
    const b = el("button", "as-app-token", state.labels[i] ?? tok, box);
    b.type = "button";
    b.dataset.index = String(i);
    const masked = state.mask.includes(i);
    b.setAttribute("aria-pressed", String(masked));
    b.classList.toggle("as-app-search-token", searching && state.searchToken === i);
    b.title = `token ${i + state.base}${state.special[i] ? " (special token: cannot be masked)" : ""}`;
    if (state.special[i]) b.classList.add("as-app-special");
    b.addEventListener("click", () => onToken(i));
  });
}

function onToken(i: number): void {
  if (mode() === "search") {
    state.searchToken = i;
    byId<HTMLSelectElement>("as-search-token").value = String(i);
    renderTokens();
    return;
  }
  if (state.special[i]) {
    showError(new ApiError(`token ${i + state.base} (${state.tokens[i]}) is a special token; it cannot be masked`));
    return;
  }
  state.mask = state.mask.includes(i) ? state.mask.filter((m) => m !== i) : [...state.mask, i].sort((a, b) => a - b);
  void trace();
}

function question(): TraceQuestion {
  const q: TraceQuestion = {
    model: state.model,
    text: state.text,
    mask: state.mask,
    k: Number(byId<HTMLInputElement>("as-k").value) || 5,
    logit_lens: byId<HTMLInputElement>("as-lens").checked,
  };
  if (state.pair.trim()) q.text_pair = state.pair;
  return q;
}

async function trace(): Promise<void> {
  const seq = ++state.seq;
  clearError();
  status(state.mask.length ? "Tracing the edited input…" : "Tracing…");
  document.body.dataset.appState = "busy";
  try {
    const answer = await call<TraceAnswer>("/api/trace", question());
    if (seq !== state.seq) return; // a newer request was made meanwhile
    if (state.mask.length === 0) {
      state.tokens = answer.tokens;
      state.labels = answer.payload.sides.source?.labels ?? answer.tokens;
      state.special = (answer.payload.sides.source?.special ?? []).map(Boolean);
      state.layers = answer.payload.model.num_layers;
      state.heads = answer.payload.model.num_heads;
      if (state.searchToken !== null && state.searchToken >= state.tokens.length) state.searchToken = null;
      fillSearchControls();
    }
    renderTokens();
    byId("as-token-section").hidden = false;
    const atlasSection = byId("as-atlas-section");
    const hasAtlas = (state.models.atlases ?? []).includes(state.model);
    if (atlasSection.hidden === hasAtlas || atlasSection.dataset.model !== state.model) byId("as-atlas").replaceChildren();
    atlasSection.hidden = !hasAtlas;
    atlasSection.dataset.model = state.model;
    await draw(byId("as-views"), answer.payload);
    const compareSection = byId("as-compare-section");
    compareSection.hidden = answer.compare === null;
    if (answer.compare) await draw(byId("as-compare"), answer.compare);
    else byId("as-compare").replaceChildren();
    byId("as-predictions").replaceChildren(predictionsView(answer.predictions, state.base));
    byId("as-predictions-section").hidden = false;
    status(state.mask.length ? `${state.mask.length} token(s) masked` : "");
    document.body.dataset.appState = "ready";
  } catch (err) {
    if (seq === state.seq) showError(err);
  }
}

function indexesOfModel(): { name: string; model: string }[] {
  return state.models.indexes.filter((i) => i.model === state.model);
}

function fillSelect(sel: HTMLSelectElement, items: { value: string; text: string }[], keep: string): void {
  sel.replaceChildren(
    ...items.map((item) => {
      const o = document.createElement("option");
      o.value = item.value;
      o.textContent = item.text;
      return o;
    }),
  );
  if (items.some((item) => item.value === keep)) sel.value = keep;
}

function fillSearchControls(): void {
  const section = byId("as-search-section");
  const indexes = indexesOfModel();
  section.hidden = false;
  byId("as-search-none").hidden = indexes.length > 0;
  byId<HTMLFormElement>("as-search-form").hidden = indexes.length === 0;
  const indexSel = byId<HTMLSelectElement>("as-index");
  fillSelect(indexSel, indexes.map((i) => ({ value: i.name, text: i.name })), indexSel.value);
  const tokenSel = byId<HTMLSelectElement>("as-search-token");
  fillSelect(
    tokenSel,
    state.labels.map((t, i) => ({ value: String(i), text: `${i + state.base}: ${t}` })),
    state.searchToken === null ? String(state.tokens.findIndex((_, i) => !state.special[i])) : String(state.searchToken),
  );
  state.searchToken = Number(tokenSel.value);
  const layerSel = byId<HTMLSelectElement>("as-layer");
  fillSelect(layerSel, Array.from({ length: state.layers }, (_, l) => ({ value: String(l), text: String(l + state.base) })), layerSel.value);
  const heads = byId("as-heads");
  const checked = new Set(Array.from(heads.querySelectorAll<HTMLInputElement>("input:checked")).map((b) => Number(b.value)));
  heads.replaceChildren();
  for (let h = 0; h < state.heads; h++) {
    const label = el("label", "as-app-headbox", undefined, heads);
    const box = el("input", undefined, undefined, label);
    box.type = "checkbox";
    box.value = String(h);
    box.checked = checked.has(h);
    el("span", undefined, String(h + state.base), label);
  }
}

async function showAtlas(): Promise<void> {
  clearError();
  status("Loading the head atlas…");
  try {
    const answer = await call<{ payload: Payload }>(`/api/atlas?model=${encodeURIComponent(state.model)}`);
    await draw(byId("as-atlas"), answer.payload);
    status("");
  } catch (err) {
    showError(err);
  }
}

async function search(): Promise<void> {
  clearError();
  const results = byId("as-search-results");
  status("Searching the corpus…");
  const heads = Array.from(byId("as-heads").querySelectorAll<HTMLInputElement>("input:checked")).map((b) => Number(b.value));
  const index = byId<HTMLSelectElement>("as-index").value;
  const body: Record<string, unknown> = {
    index,
    model: state.model,
    text: state.text,
    token: Number(byId<HTMLSelectElement>("as-search-token").value),
    layer: Number(byId<HTMLSelectElement>("as-layer").value),
    k: Number(byId<HTMLInputElement>("as-search-k").value) || 10,
  };
  if (state.pair.trim()) body.text_pair = state.pair;
  if (heads.length) body.heads = heads;
  try {
    const answer = await call<SearchAnswer>("/api/search", body);
    results.replaceChildren(searchResults(answer, state.base));
    results.dataset.count = String(answer.matches.length);
    status("");
  } catch (err) {
    showError(err);
  }
}

function setBase(base: number): void {
  if (state.base === base) return;
  state.base = base;
  byId<HTMLSelectElement>("as-base").value = String(base);
  // The views keep their own switch: move theirs too, so everything on the page numbers alike.
  for (const sel of Array.from(document.querySelectorAll<HTMLSelectElement>(".attnscope-root select.as-base"))) {
    if (sel.value !== String(base)) {
      sel.value = String(base);
      sel.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }
  renderTokens();
  fillSearchControls();
}

async function start(): Promise<void> {
  const form = byId<HTMLFormElement>("as-input");
  const modelSel = byId<HTMLSelectElement>("as-model");
  try {
    state.models = await call<ModelsAnswer>("/api/models");
  } catch (err) {
    showError(err);
    return;
  }
  fillSelect(modelSel, state.models.models.map((m) => ({ value: m, text: m })), state.models.models[0] ?? "");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    state.model = modelSel.value;
    state.text = byId<HTMLInputElement>("as-text-a").value;
    state.pair = byId<HTMLInputElement>("as-text-b").value;
    state.mask = [];
    state.searchToken = null;
    void trace();
  });
  modelSel.addEventListener("change", () => form.requestSubmit());
  byId<HTMLFormElement>("as-search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void search();
  });
  byId("as-atlas-show").addEventListener("click", () => void showAtlas());
  byId<HTMLSelectElement>("as-search-token").addEventListener("change", (e) => {
    state.searchToken = Number((e.target as HTMLSelectElement).value);
    renderTokens();
  });
  for (const id of ["as-lens", "as-k"]) {
    byId(id).addEventListener("change", () => {
      if (state.tokens.length) void trace();
    });
  }
  for (const id of ["as-click-mask", "as-click-search"]) byId(id).addEventListener("change", renderTokens);
  byId<HTMLSelectElement>("as-base").addEventListener("change", (e) => setBase(Number((e.target as HTMLSelectElement).value)));
  document.addEventListener("change", (e) => {
    const target = e.target as HTMLElement;
    if (target instanceof HTMLSelectElement && target.classList.contains("as-base") && target.closest(".attnscope-root")) {
      setBase(Number(target.value));
    }
  });
  document.body.dataset.appState = "idle";
  form.requestSubmit();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch(showError);
});
