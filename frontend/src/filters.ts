// The head view's sentence filter: which tokens may draw lines, by sentence (A = segment 0, B = segment 1).

export type Filter = "all" | "AA" | "AB" | "BA" | "BB";

export const FILTERS: readonly Filter[] = ["all", "AA", "AB", "BA", "BB"];

/** Whether a query (side "q") or key (side "k") token of sentence `segment` passes `filter`. */
export function segmentAllowed(filter: Filter, side: "q" | "k", segment: number): boolean {
  if (filter === "all") return true;
  const letter = side === "q" ? filter[0] : filter[1];
  return segment === letter.charCodeAt(0) - 65;
}
