// Stack: raw weights, delimiter hiding and row renormalisation (the rule Python's shown_attention states).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Stack } from "../src/state";
import { Side } from "../src/contract";

// 1 layer, 2 heads, 3 queries x 3 keys; token 0 is a delimiter.
const side: Side = { labels: ["[CLS]", "a", "b"], special: [1, 0, 0], segment: [0, 0, 1] };
const values = new Float32Array([
  // head 0
  0.5, 0.25, 0.25,
  0.2, 0.6, 0.2,
  1.0, 0.0, 0.0,
  // head 1
  0.1, 0.3, 0.6,
  0.0, 0.5, 0.5,
  0.4, 0.4, 0.2,
]);
const stack = new Stack("encoder", side, side, { shape: [1, 2, 3, 3], values });

test("raw weights read the flat [layer, head, query, key] array", () => {
  assert.equal(stack.raw(0, 0, 1, 1), values[4]);
  assert.equal(stack.raw(0, 1, 2, 0), values[15]);
  assert.equal(stack.weight(0, 1, 0, 2, false), values[11]);
});

test("hiding delimiters zeroes their rows and columns and renormalises every other row to 1", () => {
  for (let h = 0; h < 2; h++) {
    for (let q = 0; q < 3; q++) {
      const row = [0, 1, 2].map((k) => stack.weight(0, h, q, k, true));
      assert.equal(row[0], 0, "attention to the delimiter is hidden");
      const sum = row.reduce((a, b) => a + b, 0);
      if (q === 0) assert.equal(sum, 0, "the delimiter's own row is hidden");
      else if (h === 0 && q === 2) assert.equal(sum, 0, "a row whose weight all went to delimiters stays 0");
      else assert.ok(Math.abs(sum - 1) < 1e-6, `row ${q} of head ${h} sums to ${sum}`);
    }
  }
  // head 0, query 1: 0.6 / (0.6 + 0.2)
  assert.ok(Math.abs(stack.weight(0, 0, 1, 1, true) - 0.75) < 1e-6);
});

test("uint8 attention is scaled by 1/255", () => {
  const bytes = new Uint8Array([255, 0, 0, 51, 204, 0, 0, 0, 255]);
  const s = new Stack("encoder", side, side, { shape: [1, 1, 3, 3], values: bytes });
  assert.ok(Math.abs(s.weight(0, 0, 1, 1, false) - 0.8) < 1e-6);
  assert.ok(Math.abs(s.weight(0, 0, 1, 1, true) - 1) < 1e-6); // 204 / (204 + 0): the delimiter's 51 is dropped
});

test("a narrowed stack lists the trace's layers and heads it holds", () => {
  const s = new Stack("encoder", side, side, { shape: [1, 1, 3, 3], values: values.subarray(0, 9) }, [4], [7]);
  assert.deepEqual([s.narrowed, s.layerIds, s.headIds], [true, [4], [7]]);
  assert.throws(() => new Stack("encoder", side, side, { shape: [1, 1, 3, 3], values }, [1, 2], [0]), /2 layers x 1 heads listed/);
});
