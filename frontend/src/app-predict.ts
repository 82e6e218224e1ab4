// Predictions of a model with a language-modelling head: the top-k tokens at each masked position (masked LM)
// or for the next token (decoder), with probabilities; per layer through the model's own output head when the
// logit lens was asked for (and marked as such).

import { el } from "./dom";
import type { Candidate, Predictions } from "./app-api";

function candidates(list: Candidate[]): HTMLElement {
  const ol = el("ol", "as-app-cands");
  for (const c of list) {
    const li = el("li", "as-app-cand", undefined, ol);
    el("span", "as-app-ctok", c.token, li);
    const bar = el("span", "as-app-pbar", undefined, li);
    bar.style.width = `${Math.max(1, c.prob * 120).toFixed(1)}px`;
    el("span", "as-app-dim", `${(c.prob * 100).toFixed(1)}%`, li);
  }
  return ol;
}

/** The predictions as text and bars; a note when the model has no language-modelling head. */
export function predictionsView(pred: Predictions | null, base: number): HTMLElement {
  const box = el("div", "as-app-preds");
  if (pred === null || pred.kind === null) {
    el("p", "as-app-dim", "This model has no language-modelling head: no predictions (attention is still exact).", box);
    return box;
  }
  if (pred.predictions.length === 0) {
    const what = pred.kind === "masked" ? "Click a token to mask it and see what the model predicts there." : "No predictions.";
    el("p", "as-app-dim", what, box);
    return box;
  }
  for (const p of pred.predictions) {
    const item = el("section", "as-app-pred", undefined, box);
    const was = pred.edits.find((e) => e.index === p.position)?.token ?? p.token;
    const where = pred.kind === "masked" ? `masked position ${p.position + base} (was "${was}")` : `next token after position ${p.position + base} ("${p.token}")`;
    el("h3", undefined, where, item);
    item.appendChild(candidates(p.top));
    if (p.layers) {
      const lens = el("details", "as-app-lens", undefined, item);
      el("summary", undefined, `${pred.lens ?? "logit lens"}: top tokens per layer, read through the model's own output head`, lens);
      const table = el("table", "as-app-lens-table", undefined, lens);
      const headRow = el("tr", undefined, undefined, el("thead", undefined, undefined, table));
      el("th", undefined, "layer", headRow);
      for (let r = 0; r < (p.layers[0]?.length ?? 0); r++) el("th", undefined, `#${r + 1}`, headRow);
      const body = el("tbody", undefined, undefined, table);
      p.layers.forEach((row, layer) => {
        const tr = el("tr", undefined, undefined, body);
        el("th", undefined, String(layer + base), tr);
        for (const c of row) el("td", undefined, `${c.token} ${(c.prob * 100).toFixed(1)}%`, tr);
      });
    }
  }
  return box;
}
