// Runs web/bench/ in headless Chromium for each model given and prints a table.
//
//   node web/bench/run.mjs [--runs N] [--warmup N] [--pkg ../pkg-nosimd] model.onnx...
//
// The page is served cross-origin isolated (COOP/COEP) so onnxruntime-web may use 2 threads;
// tract-wasm is single-threaded. Model files outside web/ are served under /models/.

import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { copyFile, mkdir, rm, symlink } from "node:fs/promises";

import { serve, CHROMIUM_ARGS } from "../test/serve.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, "..");
const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(process.env.HOME, ".cache"), "ahp");
const toolsDir = process.env.AHP_NODE_DIR ?? path.join(cache, "node");
const benchDir = process.env.AHP_BENCH_NODE_DIR ?? path.join(cache, "node-bench");

const args = process.argv.slice(2);
const opt = { runs: 20, warmup: 3, pkg: "../pkg", threads: "1,2" };
const models = [];
for (let i = 0; i < args.length; i++) {
  if (args[i].startsWith("--")) opt[args[i].slice(2)] = args[++i];
  else models.push(path.resolve(args[i]));
}
if (models.length === 0) models.push(path.join(webRoot, "pkg/demo.onnx"));

// onnxruntime-web's wasm-only bundle, served from pkg/ort/ (generated, git-ignored).
const ortDist = path.join(benchDir, "node_modules/onnxruntime-web/dist");
const ortOut = path.join(webRoot, "pkg/ort");
await mkdir(ortOut, { recursive: true });
for (const f of ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]) {
  await copyFile(path.join(ortDist, f), path.join(ortOut, f));
}
// Models are linked into pkg/models/ so that the page can fetch them.
const modelDir = path.join(webRoot, "pkg/models");
await rm(modelDir, { recursive: true, force: true });
await mkdir(modelDir, { recursive: true });
for (const m of models) await symlink(m, path.join(modelDir, path.basename(m)));

const { chromium } = createRequire(path.join(toolsDir, "package.json"))("playwright-core");
const server = await serve(webRoot, {
  headers: { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" },
});
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
const version = browser.version();
let failed = false;
try {
  for (const m of models) {
    const page = await browser.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") console.error(`  [console] ${msg.text()}`);
    });
    const q = new URLSearchParams({
      model: `../pkg/models/${path.basename(m)}`,
      runs: opt.runs,
      warmup: opt.warmup,
      pkg: opt.pkg,
      threads: opt.threads,
    });
    await page.goto(`http://127.0.0.1:${server.address().port}/bench/?${q}`);
    await page.waitForFunction(() => window.__bench?.done, null, { timeout: 30 * 60_000, polling: 500 });
    const { rows, error } = await page.evaluate(() => window.__bench);
    console.log(`\n${path.basename(m)} — Chromium ${version}, ${opt.runs} runs after ${opt.warmup} warm-up, batch 1`);
    if (error) {
      console.log(`  error: ${error}`);
      failed = true;
    }
    const tract = rows.find((r) => r.name.startsWith("tract"));
    console.log("| runtime | load ms | median ms | min ms | vs. tract |");
    console.log("|---|---:|---:|---:|---:|");
    for (const r of rows) {
      if (r.skipped) {
        console.log(`| ${r.name} | skipped: ${r.skipped} | | | |`);
        continue;
      }
      const ratio = tract ? (r.medianMs / tract.medianMs).toFixed(2) + "×" : "";
      console.log(`| ${r.name} | ${r.loadMs.toFixed(0)} | ${r.medianMs.toFixed(2)} | ${r.minMs.toFixed(2)} | ${ratio} |`);
    }
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
