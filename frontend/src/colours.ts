// Head colours and hover stripes: pure functions over the palette that Python resolved into the payload.

import { Resolved } from "./contract";

const FALLBACK = "#1f77b4";

/** The colour of head `head`: the resolved palette (>= 32 distinct colours), cycling past its end. */
export function headColour(resolved: Pick<Resolved, "head_colours">, head: number): string {
  const colours = resolved.head_colours;
  return colours.length ? colours[head % colours.length] : FALLBACK;
}

/**
 * The stripe of the `index`-th of `count` shown heads inside a token's box from `x` to `x + width`
 * (BertViz's hover boxes: one stripe per head side by side, never stacked to blend into brown).
 */
export function stripe(x: number, width: number, index: number, count: number): [number, number] {
  const w = width / Math.max(1, count);
  return [x + index * w, w];
}
