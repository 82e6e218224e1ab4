// Head colours come from the resolved palette; hover boxes split into one stripe per shown head.
import { test } from "node:test";
import assert from "node:assert/strict";
import { headColour, stripe } from "../src/colours";

const palette = Array.from({ length: 32 }, (_, i) => `#${i.toString(16).padStart(6, "0")}`);

test("head h gets the h-th resolved colour, and 32 heads get 32 colours", () => {
  assert.equal(headColour({ head_colours: palette }, 10), palette[10]);
  const seen = new Set(Array.from({ length: 32 }, (_, h) => headColour({ head_colours: palette }, h)));
  assert.equal(seen.size, 32);
});

test("past the palette's end colours cycle, and an empty palette still gives a colour", () => {
  assert.equal(headColour({ head_colours: palette }, 33), palette[1]);
  assert.match(headColour({ head_colours: [] }, 3), /^#[0-9a-f]{6}$/);
});

test("stripes tile the box side by side, one per head", () => {
  const parts = [0, 1, 2, 3].map((i) => stripe(10, 80, i, 4));
  assert.deepEqual(parts, [[10, 20], [30, 20], [50, 20], [70, 20]]);
  assert.deepEqual(stripe(10, 80, 0, 1), [10, 80]);
  assert.deepEqual(stripe(10, 80, 0, 0), [10, 80]); // no heads: never a division by zero
});
