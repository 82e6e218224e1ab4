// Links that open a view in a panel: any element with data-attnscope-open="ID" (the id of a JSON
// payload block) and data-attnscope-target="ID" (the panel) opens, on click, the payload's view there
// with data-layer / data-head selected and data-caption above it. Probe pages use this for their
// heatmap cells; no page needs a script of its own.

import { el } from "./dom";
import { Payload } from "./contract";

type Render = (element: HTMLElement, payload: Payload) => Promise<void>;

/** Listen for clicks on such links in `doc` (once per document). */
export function installLinks(doc: Document, render: Render): void {
  doc.addEventListener("click", (event) => {
    const start = event.target instanceof Element ? event.target : null;
    const link = start?.closest<HTMLElement>("[data-attnscope-open]");
    if (!link) return;
    event.preventDefault();
    openLink(doc, link, render);
  });
}

/** Open one link's view (exported for tests). */
export function openLink(doc: Document, link: HTMLElement, render: Render): HTMLElement | null {
  const block = doc.getElementById(link.dataset.attnscopeOpen ?? "");
  const panel = doc.getElementById(link.dataset.attnscopeTarget ?? "");
  if (!block || !panel) return null;
  const payload = JSON.parse(block.textContent ?? "null") as Payload;
  const root = el("div", "attnscope-root");
  for (const key of ["layer", "head"] as const) {
    const value = Number(link.dataset[key]);
    if (!Number.isInteger(value) || value < 0) continue;
    if (key === "layer") payload.resolved.layer = value;
    else payload.resolved.heads = [value];
    root.dataset[key] = String(value);
  }
  panel.replaceChildren(el("p", "as-probe-caption", link.dataset.caption ?? ""), root);
  root.dataset.attnscopeState = "rendering";
  render(root, payload).then(
    () => (root.dataset.attnscopeState = "ready"),
    (err: unknown) => {
      root.dataset.attnscopeState = "error";
      root.replaceChildren(el("div", "as-error", `attnscope could not draw this view: ${String(err)}`));
      console.error(err);
    },
  );
  return root;
}
