// The ahp demo page: loads the WebAssembly module (pkg/, built by scripts/build-wasm.sh), the
// demo model (pkg/demo.onnx), and classifies the image the user picks or drops, entirely in the
// browser. No framework, no network beyond the page's own files.
//
// For tests and scripts the page exposes its state as `window.__ahp`:
//   ready     Promise resolved once the module and the default model are loaded
//   info      the model info (AhpModel.info())
//   result    the last classification ({ top, probs, logits, timing, image })
//   error     the last error message (also shown in #error)
// and the predictions in the DOM as <li data-label=".." data-prob=".."> under #predictions.

import init, { AhpModel, buildInfo } from "./pkg/ahp_wasm.js";

const TOP_K = 5;
const $ = (id) => document.getElementById(id);

const state = { model: null, image: null, result: null, info: null, error: null };
window.__ahp = state;

function setStatus(text, kind = "ready") {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = kind;
}

function showError(message) {
  state.error = message;
  const el = $("error");
  el.textContent = message;
  el.hidden = false;
  setStatus("Error — see below.", "error");
}

function clearError() {
  state.error = null;
  $("error").hidden = true;
  $("error").textContent = "";
}

function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

const fmtBytes = (b) =>
  b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MB` : `${(b / 1024).toFixed(1)} kB`;
const fmtMs = (ms) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(ms >= 10 ? 1 : 2)) + " ms";

function renderInfo(info) {
  const rows = [
    ["file", `${info.name} (${fmtBytes(info.bytes)}, loaded in ${fmtMs(info.loadMs)})`],
    ["method", info.method ?? "—"],
    ["classes", `${info.labels.length}: ${info.labels.join(", ")}`],
    ["input", `${info.imageSize[0]}×${info.imageSize[1]} px (${info.resize})`],
    ["normalize", `mean [${info.mean.map((v) => v.toFixed(3)).join(", ")}], std [${info.std.map((v) => v.toFixed(3)).join(", ")}]`],
    ["template", info.template ?? "—"],
    ["gates", info.gatesText],
  ];
  if (info.prunedHeads > 0) rows.push(["pruned heads", String(info.prunedHeads)]);
  const dl = $("model-info");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.key = k;
    dl.append(dt, dd);
  }
}

function renderResult(result) {
  const ol = $("predictions");
  ol.replaceChildren();
  for (const p of result.top) {
    const li = document.createElement("li");
    li.dataset.label = p.label;
    li.dataset.prob = String(p.prob);
    li.dataset.index = String(p.index);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    label.title = p.label;
    const track = document.createElement("span");
    track.className = "track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.display = "block";
    bar.style.width = `${(p.prob * 100).toFixed(2)}%`;
    track.append(bar);
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = `${(p.prob * 100).toFixed(1)}%`;
    li.append(label, track, prob);
    ol.append(li);
  }
  const t = result.timing;
  $("latency").textContent =
    `latency ${fmtMs(t.totalMs)} (preprocess ${fmtMs(t.preprocessMs)}, inference ${fmtMs(t.inferenceMs)}) — ` +
    `${result.image.width}×${result.image.height} px image`;
}

// Decodes an image file into RGBA pixels as they are stored in the file: no color management
// (the Rust decoders ignore ICC profiles too), no premultiplication before reading back.
async function decodeImage(file) {
  const bitmap = await createImageBitmap(file, {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const data = ctx.getImageData(0, 0, width, height, { colorSpace: "srgb" });
  return { rgba: new Uint8Array(data.data.buffer), width, height };
}

function classifyCurrent() {
  if (!state.model || !state.image) return;
  const { rgba, width, height, name } = state.image;
  setStatus(`Classifying ${name}…`, "busy");
  try {
    const result = state.model.classify(rgba, width, height, TOP_K);
    result.image = { name, width, height };
    result.model = state.info.name;
    state.result = result;
    renderResult(result);
    clearError();
    setStatus(`${name}: ${result.top[0].label} (${(result.top[0].prob * 100).toFixed(1)}%)`);
  } catch (e) {
    showError(`Cannot classify ${name}: ${errorText(e)}`);
  }
}

async function useImage(file) {
  setStatus(`Decoding ${file.name}…`, "busy");
  let decoded;
  try {
    decoded = await decodeImage(file);
  } catch (e) {
    showError(`${file.name}: the browser cannot decode this image (${errorText(e)})`);
    return;
  }
  state.image = { ...decoded, name: file.name };
  const img = $("preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.alt = file.name;
  img.hidden = false;
  $("no-image").hidden = true;
  classifyCurrent();
}

async function useModel(bytes, name) {
  setStatus(`Loading model ${name}…`, "busy");
  // Let the status paint before the (synchronous) parse and optimization.
  await new Promise((r) => setTimeout(r, 0));
  let model;
  try {
    model = new AhpModel(bytes, name);
  } catch (e) {
    const kept = state.model ? ` (still using ${state.info.name})` : "";
    showError(`Cannot load the model: ${errorText(e)}${kept}`);
    return false;
  }
  if (state.model) state.model.free();
  state.model = model;
  state.info = model.info();
  renderInfo(state.info);
  clearError();
  setStatus(`Model ${name} ready.`);
  if (state.image) classifyCurrent();
  return true;
}

async function loadDemoModel() {
  const meta = await (await fetch("pkg/demo.json")).json();
  const response = await fetch(`pkg/${meta.file}`);
  if (!response.ok) throw new Error(`pkg/${meta.file}: HTTP ${response.status}`);
  return useModel(new Uint8Array(await response.arrayBuffer()), meta.name);
}

async function handleFiles(files) {
  for (const file of files) {
    if (/\.onnx$/i.test(file.name)) {
      await useModel(new Uint8Array(await file.arrayBuffer()), file.name);
    } else {
      await useImage(file);
    }
  }
}

function wire() {
  $("image-input").addEventListener("change", async (e) => {
    if (e.target.files.length) await useImage(e.target.files[0]);
    e.target.value = "";
  });
  $("model-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) await useModel(new Uint8Array(await file.arrayBuffer()), file.name);
    e.target.value = "";
  });
  $("demo-button").addEventListener("click", () => loadDemoModel().catch((e) => showError(errorText(e))));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    document.addEventListener(type, () => drop.classList.remove("over"));
  }
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer?.files?.length) handleFiles([...e.dataTransfer.files]);
  });
}

async function main() {
  wire();
  try {
    await init();
  } catch (e) {
    showError(`Cannot load the WebAssembly module pkg/ahp_wasm_bg.wasm (run scripts/build-wasm.sh): ${errorText(e)}`);
    throw e;
  }
  const build = buildInfo();
  state.build = build;
  $("build").textContent =
    `ahp-wasm ${build.version} · tract ${build.tract} · WebAssembly SIMD ${build.simd128 ? "on" : "off"}`;
  await loadDemoModel();
}

state.ready = main().catch((e) => {
  if (!state.error) showError(errorText(e));
});
