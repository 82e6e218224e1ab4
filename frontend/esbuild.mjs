// Bundles src/main.ts into one IIFE file that Python inlines into every page (no runtime fetches).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: [path.join(here, "src", "main.ts")],
  outfile: path.join(here, "..", "src", "attnscope", "views", "static", "attnscope.js"),
  bundle: true,
  format: "iife",
  target: "es2020",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
