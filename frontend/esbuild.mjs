// Bundles src/main.ts into one IIFE file that Python inlines into every page (no runtime fetches), and
// src/app.ts into the app page's script (served by attnscope serve beside the views bundle).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const common = {
  bundle: true,
  format: "iife",
  target: "es2020",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};
await build({
  ...common,
  entryPoints: [path.join(here, "src", "main.ts")],
  outfile: path.join(here, "..", "src", "attnscope", "views", "static", "attnscope.js"),
});
await build({
  ...common,
  entryPoints: [path.join(here, "src", "app.ts")],
  outfile: path.join(here, "..", "src", "attnscope", "app", "static", "app.js"),
});
