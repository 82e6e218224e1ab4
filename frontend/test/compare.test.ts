// The comparison view's pure parts: merged labels, the difference colours, and a mean over heads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LESS, MORE, differenceColour, mergedLabels, weight } from "../src/compare";
import { Stack } from "../src/state";

test("merged labels mark replaced, removed and inserted tokens (as the PNG/SVG)", () => {
  const al = { a: [0, 1, 2, -1], b: [0, 1, -1, 2], kind: ["equal", "replace", "delete", "insert"] as ("equal" | "replace" | "delete" | "insert")[] };
  assert.deepEqual(mergedLabels(al, ["the", "cat", "sat"], ["the", "dog", "ran"]), ["the", "cat\u2192dog", "\u2212sat", "+ran"]);
});

test("differences blend the background towards red (more in B) or blue (less in B) by |v| / peak", () => {
  assert.equal(differenceColour(0, 1, "#ffffff"), "rgb(255,255,255)");
  assert.equal(differenceColour(0.5, 0.5, "#000000"), `rgb(${[1, 3, 5].map((i) => parseInt(MORE.slice(i, i + 2), 16)).join(",")})`);
  assert.equal(differenceColour(-2, 0.5, "#000000"), `rgb(${[1, 3, 5].map((i) => parseInt(LESS.slice(i, i + 2), 16)).join(",")})`);
  assert.equal(differenceColour(0.25, 0, "#1e1e1e"), "rgb(30,30,30)"); // no difference anywhere: background
});

test("weight is one head's value, or the mean over the heads given (head -1)", () => {
  const side = { labels: ["a", "b"], special: [0, 0], segment: [0, 0] };
  const values = new Float32Array([0.5, 0.5, 1, 0, 0.2, 0.8, 0, 1, 0.25, 0.75, 0.6, 0.4]); // 1 layer, 3 heads, 2 x 2
  const st = new Stack("encoder", side, side, { shape: [1, 3, 2, 2], values });
  assert.equal(weight(st, 0, 1, [0, 1, 2], 0, 1), 0.800000011920929);
  assert.ok(Math.abs(weight(st, 0, -1, [0, 2], 1, 0) - (1 + 0.6) / 2) < 1e-6);
});
