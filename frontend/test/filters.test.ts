// The head view's sentence filter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FILTERS, segmentAllowed } from "../src/filters";

test("All lets every token through", () => {
  for (const side of ["q", "k"] as const) for (const seg of [0, 1]) assert.ok(segmentAllowed("all", side, seg));
});

test("A->B keeps queries of sentence A and keys of sentence B", () => {
  assert.ok(segmentAllowed("AB", "q", 0));
  assert.ok(!segmentAllowed("AB", "q", 1));
  assert.ok(segmentAllowed("AB", "k", 1));
  assert.ok(!segmentAllowed("AB", "k", 0));
});

test("every filter pairs a query sentence with a key sentence", () => {
  const table = FILTERS.filter((f) => f !== "all").map((f) => [f, segmentAllowed(f, "q", 0), segmentAllowed(f, "k", 0)]);
  assert.deepEqual(table, [
    ["AA", true, true],
    ["AB", true, false],
    ["BA", false, true],
    ["BB", false, false],
  ]);
});
