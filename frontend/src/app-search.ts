// The corpus search panel: the k corpus contexts a model represents most like one token of the input,
// with the matched token marked, the token it attends to most, and histograms of the matches' POS / DEP.

import { el } from "./dom";
import type { Match, SearchAnswer } from "./app-api";

/** One match as a sentence of token spans: the matched token <mark>ed, the token it attends to underlined. */
export function matchRow(match: Match, base: number): HTMLElement {
  const li = el("li", "as-app-match");
  const head = el("div", "as-app-match-head", undefined, li);
  el("span", "as-app-score", match.score.toFixed(3), head);
  const what = [match.pos, match.dep].filter((x) => x !== null && x !== undefined).join(" / ");
  if (what) el("span", "as-app-tags", what, head);
  el("span", "as-app-dim", `sentence ${match.sentence_index + base}, token ${match.token_index + base}`, head);
  const line = el("div", "as-app-sentence", undefined, li);
  match.tokens.forEach((tok, i) => {
    if (i > 0) line.appendChild(document.createTextNode(" "));
    if (i === match.token_index) {
      el("mark", "as-app-hit", tok, line).title = "matched token";
    } else if (i === match.attends_to) {
      el("span", "as-app-attended", tok, line).title = `the token ${match.token} attends to most`;
    } else {
      el("span", undefined, tok, line);
    }
  });
  const att = match.tokens[match.attends_to];
  if (att !== undefined) el("div", "as-app-dim", `attends most to: ${att} (token ${match.attends_to + base})`, li);
  return li;
}

/** A histogram of label counts as horizontal bars, most frequent first, with a text count on each. */
export function histogram(title: string, counts: Record<string, number>): HTMLElement {
  const box = el("figure", "as-app-hist");
  el("figcaption", undefined, title, box);
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) {
    el("p", "as-app-dim", "no labels (the corpus was not CoNLL-U)", box);
    return box;
  }
  const top = entries[0][1];
  for (const [label, n] of entries) {
    const row = el("div", "as-app-hrow", undefined, box);
    el("span", "as-app-hlabel", label, row);
    const bar = el("span", "as-app-hbar", undefined, row);
    bar.style.width = `${((n / top) * 100).toFixed(1)}%`;
    el("span", "as-app-hcount", String(n), row);
  }
  return box;
}

/** The whole answer: the list of matches and the two histograms. */
export function searchResults(answer: SearchAnswer, base: number): HTMLElement {
  const box = el("div", "as-app-results");
  const q = answer.query;
  const heads = q.heads === null ? "all heads" : `heads ${q.heads.map((h) => h + base).join(", ")}`;
  el("p", "as-app-dim", `${answer.matches.length} nearest contexts of "${q.tokens[q.token] ?? ""}" at layer ${q.layer + base} (${heads}, by ${q.by})`, box);
  const list = el("ol", "as-app-matches", undefined, box);
  for (const m of answer.matches) list.appendChild(matchRow(m, base));
  const hists = el("div", "as-app-hists", undefined, box);
  hists.appendChild(histogram("Part of speech (POS)", answer.summary.pos));
  hists.appendChild(histogram("Dependency label (DEP)", answer.summary.dep));
  return box;
}
