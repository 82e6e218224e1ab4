// Builds every test/*.test.ts with the pinned esbuild (one ESM file each, for node) into a temporary
// folder and runs them with node's own test runner (node:test). Used by `npm test`.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const tests = readdirSync(here).filter((f) => f.endsWith(".test.ts")).sort();
const out = mkdtempSync(path.join(tmpdir(), "attnscope-frontend-test-"));
try {
  await build({
    entryPoints: tests.map((f) => path.join(here, f)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node18",
    logLevel: "warning",
  });
  const files = tests.map((f) => path.join(out, f.replace(/\.ts$/, ".mjs")));
  const run = spawnSync(process.execPath, ["--test", ...files], { stdio: "inherit" });
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
