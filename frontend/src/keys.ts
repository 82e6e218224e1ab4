// Keys inside a view belong to the view, not to the notebook around it.
//
// Notebook 7 (Lumino) matches its command-mode shortcuts in the capture phase, before a view sees the
// key: ArrowDown on the head view's lines moved the notebook's cell cursor (and took the focus away),
// Enter then opened another cell's editor. Lumino skips shortcuts for a focused element marked
// data-lm-suppress-shortcuts, so the element that has focus inside a view is marked for the keys views
// use, and unmarked for every other key: Ctrl+S, Shift+Enter and the rest still reach the notebook.
// (JupyterLab matches shortcuts after the view has handled a key; the mark changes nothing there.)

/** Unmodified keys the views use: arrows, Home/End, Page Up/Down, Enter, Space, Escape. */
const VIEW_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown", "Enter", " ", "Escape"]);

/** Whether a key press belongs to the view that has focus (pure; unit-tested). */
export function viewOwnsKey(e: Pick<KeyboardEvent, "key" | "ctrlKey" | "metaKey" | "altKey" | "shiftKey">): boolean {
  return VIEW_KEYS.has(e.key) && !e.ctrlKey && !e.metaKey && !e.altKey && !e.shiftKey;
}

/** Mark or unmark the focused element of a view before the page's own shortcuts see the key (once per window). */
export function installKeys(win: Window): void {
  win.addEventListener(
    "keydown",
    (e) => {
      const target = e.target instanceof Element ? e.target : null;
      if (!target?.closest(".attnscope-root")) return;
      target.toggleAttribute("data-lm-suppress-shortcuts", viewOwnsKey(e));
    },
    true, // capture on the window runs before a capture listener on the document
  );
}
