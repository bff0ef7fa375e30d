// Drives the demo page in real headless Chromium and compares it with ONNX Runtime.
//
//   node web/test/browser.mjs <ahp-predict.json> <image>...
//
// Serves web/ on 127.0.0.1 (a free port), launches /usr/bin/chromium through playwright-core
// (from $AHP_NODE_DIR, installed by scripts/build-wasm.sh) with a fresh profile, and runs:
//   1. the page loads the module and the demo model (no error, model info shown);
//   2. each image, uploaded through the file picker, gets the same top-1 label as
//      `ahp-predict --json` and probabilities within 1e-3 (screenshot saved);
//   3. a bad .onnx file picked as the model shows an error message (the page is not blank).
// Prints `web: N passed, M failed`; exit code 1 on failure. Everything is stopped at the end or
// after AHP_WEB_TEST_TIMEOUT_S seconds.

import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { serve, CHROMIUM_ARGS } from "./serve.mjs";

const TOLERANCE = 1e-3;
const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, "..");
const repo = path.resolve(webRoot, "..");
const outDir = process.env.AHP_WEB_TEST_OUT ?? path.join(repo, "target/web-test");
const nodeDir =
  process.env.AHP_NODE_DIR ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(process.env.HOME, ".cache"), "ahp/node");
const timeoutS = Number(process.env.AHP_WEB_TEST_TIMEOUT_S ?? 120);
const chromiumPath = process.env.AHP_CHROMIUM ?? "/usr/bin/chromium";

const [referencePath, ...images] = process.argv.slice(2);
if (!referencePath || images.length === 0) {
  console.error("usage: node web/test/browser.mjs <ahp-predict.json> <image>...");
  process.exit(2);
}

const require = createRequire(path.join(nodeDir, "package.json"));
const { chromium } = require("playwright-core");

// ---- tiny test runner ----------------------------------------------------------------------
const results = [];
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ---- main ----------------------------------------------------------------------------------
const reference = new Map();
for (const line of (await readFile(referencePath, "utf8")).split("\n").filter(Boolean)) {
  const r = JSON.parse(line);
  if (r.error) throw new Error(`ahp-predict failed on ${r.path}: ${r.error}`);
  reference.set(path.basename(r.path), r);
}

let server, browser;
const watchdog = setTimeout(async () => {
  console.log(`FAIL timeout: the browser test did not finish within ${timeoutS} s`);
  console.log(`web: ${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length + 1} failed`);
  try { await browser?.close(); } catch {}
  server?.close();
  process.exit(1);
}, timeoutS * 1000);

try {
  server = await serve(webRoot);
  const url = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // playwright adds --headless and a fresh temporary --user-data-dir itself.
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    // Failed requests are reported with their URL below.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
  page.on("response", (r) => {
    if (r.status() >= 400) pageErrors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  page.setDefaultTimeout(30_000);

  await test("page loads the module and the demo model", async () => {
    await page.goto(url);
    await page.waitForFunction(() => window.__ahp && window.__ahp.ready);
    await page.evaluate(() => window.__ahp.ready);
    const s = await page.evaluate(() => ({
      error: window.__ahp.error,
      info: window.__ahp.info,
      build: window.__ahp.build,
      status: document.getElementById("status").textContent,
    }));
    assert(!s.error, `page error: ${s.error}`);
    assert(s.info && s.info.labels.length > 0, "no model info");
    const shown = await page.locator('#model-info dd[data-key="classes"]').textContent();
    assert(shown.includes(s.info.labels[0]), `model info does not show the labels: ${shown}`);
    console.log(
      `     model ${s.info.name}: ${s.info.labels.length} classes, ${s.info.imageSize.join("x")} px, ` +
        `method ${s.info.method}, loaded in ${s.info.loadMs.toFixed(1)} ms; ` +
        `ahp-wasm ${s.build.version}, simd128 ${s.build.simd128}`,
    );
  });

  await test(`classification matches ahp-predict (ONNX Runtime) within ${TOLERANCE}`, async () => {
    let worst = 0;
    for (const [i, image] of images.entries()) {
      const name = path.basename(image);
      const ref = reference.get(name);
      assert(ref, `no ahp-predict reference for ${name}`);
      await page.setInputFiles("#image-input", path.resolve(repo, image));
      await page.waitForFunction((n) => window.__ahp.result?.image?.name === n || window.__ahp.error, name);
      const err = await page.evaluate(() => window.__ahp.error);
      assert(!err, `${name}: page error: ${err}`);
      const shown = await page.$$eval("#predictions li", (lis) =>
        lis.map((li) => ({ label: li.dataset.label, prob: Number(li.dataset.prob) })),
      );
      const result = await page.evaluate(() => window.__ahp.result);
      const labels = await page.evaluate(() => window.__ahp.info.labels);
      assert(shown.length === Math.min(5, labels.length), `${name}: ${shown.length} predictions shown`);
      assert(
        shown[0].label === ref.top[0].label,
        `${name}: top-1 ${shown[0].label} in the browser, ${ref.top[0].label} with ONNX Runtime`,
      );
      const refProb = new Map(ref.top.map((t) => [t.label, t.prob]));
      for (const p of shown) {
        const d = Math.abs(p.prob - refProb.get(p.label));
        worst = Math.max(worst, d);
        assert(d <= TOLERANCE, `${name}: p(${p.label}) = ${p.prob} in the browser, ${refProb.get(p.label)} with ONNX Runtime`);
      }
      for (const [k, label] of labels.entries()) {
        const d = Math.abs(result.probs[k] - refProb.get(label));
        worst = Math.max(worst, d);
        assert(d <= TOLERANCE, `${name}: p(${label}) differs by ${d}`);
      }
      const t = result.timing;
      console.log(
        `     ${name}: ${shown.map((p) => `${p.label} ${p.prob.toFixed(4)}`).join("  ")}  ` +
          `(ort: ${ref.top.slice(0, 5).map((p) => `${p.label} ${p.prob.toFixed(4)}`).join("  ")}); ` +
          `${t.totalMs.toFixed(2)} ms`,
      );
      if (i === 0) {
        await page.screenshot({ path: path.join(outDir, "screenshot.png"), fullPage: true });
      }
    }
    console.log(`     max |p(browser) - p(ort)| = ${worst.toExponential(2)} over ${images.length} images`);
    assert(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
  });

  await test("a bad model file shows an error message", async () => {
    const bad = path.join(outDir, "bad.onnx");
    let x = 0x2545f491;
    const noise = Buffer.alloc(4096, 0).map(() => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
    await writeFile(bad, noise);
    await page.setInputFiles("#model-input", bad);
    const error = page.locator("#error");
    await error.waitFor({ state: "visible" });
    const text = await error.textContent();
    assert(text.includes("bad.onnx"), `error message does not name the file: ${text}`);
    assert(/Cannot load the model/.test(text), `unexpected error message: ${text}`);
    // Still a working page: the previous model and predictions stay.
    assert((await page.locator("#predictions li").count()) > 0, "predictions vanished");
    assert(await page.locator("#model-info dd").first().isVisible(), "model info vanished");
    await page.screenshot({ path: path.join(outDir, "error.png"), fullPage: true });
    console.log(`     shown: ${text}`);
    const hardErrors = pageErrors.filter((e) => !e.startsWith("console:"));
    assert(hardErrors.length === 0, `uncaught errors: ${hardErrors.join("; ")}`);
  });
} catch (e) {
  results.push({ name: "setup", ok: false });
  console.log(`FAIL setup: ${e?.stack ?? e}`);
} finally {
  clearTimeout(watchdog);
  try { await browser?.close(); } catch {}
  server?.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`screenshots: ${path.relative(repo, path.join(outDir, "screenshot.png"))}, ${path.relative(repo, path.join(outDir, "error.png"))}`);
console.log(`web: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
