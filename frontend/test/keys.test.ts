// Which key presses a view keeps from the notebook around it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { viewOwnsKey } from "../src/keys";

const press = (key: string, mods: Partial<Record<"ctrlKey" | "metaKey" | "altKey" | "shiftKey", boolean>> = {}) =>
  viewOwnsKey({ key, ctrlKey: false, metaKey: false, altKey: false, shiftKey: false, ...mods });

test("the keys views move and choose with belong to the view", () => {
  for (const key of ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "Enter", " ", "Escape"]) {
    assert.ok(press(key), key);
  }
});

test("shortcuts with modifiers and other keys stay the notebook's", () => {
  assert.ok(!press("s", { ctrlKey: true })); // save
  assert.ok(!press("Enter", { shiftKey: true })); // run the cell
  assert.ok(!press("Enter", { ctrlKey: true }));
  assert.ok(!press("ArrowDown", { shiftKey: true })); // extend the cell selection
  assert.ok(!press("a"));
  assert.ok(!press("d"));
});
