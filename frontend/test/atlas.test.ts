// The atlas view's cell colours: the role's hue over the theme background by score (as the PNG/SVG).
import { test } from "node:test";
import assert from "node:assert/strict";
import { blend, intensity, luminance } from "../src/atlas";

test("score 0 is a quarter of the role's hue, score 1 all of it; no score counts as 0", () => {
  assert.equal(intensity(0), 0.25);
  assert.equal(intensity(1), 1);
  assert.equal(intensity(2), 1);
  assert.equal(intensity(-1), 0.25);
  assert.equal(intensity(null), 0.25);
});

test("blend mixes hex colours per channel and reads back as brightness", () => {
  assert.equal(blend("#ff0000", "#000000", 1), "rgb(255,0,0)");
  assert.equal(blend("#ff0000", "#ffffff", 0.25), "rgb(255,191,191)");
  assert.ok(luminance(blend("#17becf", "#ffffff", 0.3)) > 0.55);
  assert.ok(luminance(blend("#1f77b4", "#1e1e1e", 1)) < 0.55);
});
