// Per-image latency of one .onnx model in this browser: tract-wasm (ahp-wasm, model run only,
// from AhpModel.classify's timing) and onnxruntime-web (wasm backend, SIMD build, session.run),
// on the same bytes in the same page. Results in the table and in `window.__bench`.

const params = new URLSearchParams(location.search);
const modelUrl = params.get("model") ?? "../pkg/demo.onnx";
const runs = Number(params.get("runs") ?? 20);
const warmup = Number(params.get("warmup") ?? 3);
const pkg = params.get("pkg") ?? "../pkg";
const threadList = (params.get("threads") ?? "1").split(",").map(Number);
const status = document.getElementById("status");
const rows = [];
window.__bench = { done: false, rows, error: null };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function addRow(name, loadMs, times, extra = {}) {
  const row = { name, loadMs, medianMs: median(times), minMs: Math.min(...times), runs: times.length, ...extra };
  rows.push(row);
  const tr = document.createElement("tr");
  for (const v of [name, loadMs.toFixed(0), row.medianMs.toFixed(2), row.minMs.toFixed(2), String(row.runs)]) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.append(td);
  }
  document.querySelector("#results tbody").append(tr);
}

async function benchTract(bytes, name) {
  const mod = await import(`${pkg}/ahp_wasm.js`);
  await mod.default();
  const build = mod.buildInfo();
  let t0 = performance.now();
  const model = new mod.AhpModel(bytes, name);
  const loadMs = performance.now() - t0;
  const info = model.info();
  // A synthetic image of the model's input size (preprocessing is then a copy + normalize).
  const [h, w] = info.imageSize;
  const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 2654435761) >>> 24);
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const r = model.classify(rgba, w, h, 5);
    if (i >= warmup) times.push(r.timing.inferenceMs);
  }
  addRow(`tract-wasm (simd128 ${build.simd128 ? "on" : "off"})`, loadMs, times, { simd128: build.simd128 });
  model.free();
  return info;
}

async function benchOrt(bytes, info, threads) {
  const ort = await import("../pkg/ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = new URL("../pkg/ort/", location.href).href;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const loadMs = performance.now() - t0;
  const [h, w] = info.imageSize;
  const data = new Float32Array(3 * h * w).map((_, i) => ((i * 2654435761) >>> 24) / 128 - 1);
  const feeds = { pixel_values: new ort.Tensor("float32", data, [1, 3, h, w]) };
  const times = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t = performance.now();
    await session.run(feeds, ["logits"]);
    if (i >= warmup) times.push(performance.now() - t);
  }
  addRow(`onnxruntime-web ${ort.env.versions?.web ?? ""} wasm, ${threads} thread${threads > 1 ? "s" : ""}`, loadMs, times, { threads });
  await session.release();
}

async function main() {
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`${modelUrl}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const name = modelUrl.split("/").pop();
  status.textContent = `${name} (${(bytes.length / 1048576).toFixed(1)} MB): tract…`;
  const info = await benchTract(bytes, name);
  for (const threads of threadList) {
    if (threads > 1 && !crossOriginIsolated) {
      rows.push({ name: `onnxruntime-web ${threads} threads`, skipped: "page not cross-origin isolated" });
      continue;
    }
    status.textContent = `${name}: onnxruntime-web, ${threads} thread(s)…`;
    await benchOrt(bytes, info, threads);
  }
  status.textContent = `${name}: done (${runs} runs after ${warmup} warm-up, batch 1, ${info.imageSize.join("x")} px)`;
}

main()
  .catch((e) => {
    window.__bench.error = String(e?.stack ?? e);
    status.textContent = `error: ${e}`;
  })
  .finally(() => {
    window.__bench.done = true;
  });
