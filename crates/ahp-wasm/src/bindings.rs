//! The JavaScript API (wasm-bindgen). Thin wrappers around [`crate::Model`]: errors become
//! JavaScript `Error`s with the crate's messages, results become plain objects.
//!
//! ```js
//! import init, { AhpModel } from "./pkg/ahp_wasm.js";
//! await init();
//! const model = new AhpModel(new Uint8Array(await (await fetch("model.onnx")).arrayBuffer()), "model.onnx");
//! model.info();   // { name, labels, imageSize, method, gatesText, ... }
//! const image = ctx.getImageData(0, 0, w, h);
//! model.classify(new Uint8Array(image.data.buffer), w, h, 5);
//! // { top: [{ label, prob, index }], probs, logits, timing: { preprocessMs, inferenceMs, totalMs } }
//! ```

use serde::Serialize;
use wasm_bindgen::prelude::{wasm_bindgen, JsError, JsValue};

use crate::error::Error;
use crate::model::Model;

/// Installs the panic hook (panics are logged to the console with their message instead of an
/// opaque `unreachable`). Runs when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let json = serde_json::to_string(value)
        .map_err(|e| JsError::new(&format!("cannot serialize the result: {e}")))?;
    js_sys::JSON::parse(&json).map_err(|_| JsError::new("cannot convert the result to JavaScript"))
}

/// An exported ahp model loaded with tract.
#[wasm_bindgen]
pub struct AhpModel {
    inner: Model,
}

#[wasm_bindgen]
impl AhpModel {
    /// Parses an ONNX file (`bytes`, e.g. from `fetch` or a file picker) with its `ahp.*`
    /// metadata; `name` (the file name) appears in error messages. Throws on a file that is not
    /// ONNX, lacks the metadata or breaks the I/O contract.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], name: Option<String>) -> Result<AhpModel, JsError> {
        let name = name.unwrap_or_else(|| "model.onnx".to_string());
        Model::load(bytes, &name)
            .map(|inner| AhpModel { inner })
            .map_err(js_error)
    }

    /// Classifies an RGBA image (`width * height * 4` bytes, e.g. `ImageData.data`) with the
    /// same preprocessing as training and ONNX Runtime. Returns `{ top: [{label, prob, index}],
    /// probs, logits, timing: {preprocessMs, inferenceMs, totalMs} }`. Throws on bad dimensions.
    pub fn classify(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        top_k: u32,
    ) -> Result<JsValue, JsError> {
        let result = self
            .inner
            .classify_rgba(rgba, width, height, top_k as usize)
            .map_err(js_error)?;
        to_js(&result)
    }

    /// Model information: `{ name, bytes, loadMs, labels, imageSize: [h, w], resize, mean, std,
    /// method, template, source, gates, gatesText, prunedHeads, properties }`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.summary())
    }

    /// Class labels in logit order.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.info().labels.clone()
    }
}

/// Same as `new AhpModel(bytes, name)`.
#[wasm_bindgen(js_name = loadModel)]
pub fn load_model(bytes: &[u8], name: Option<String>) -> Result<AhpModel, JsError> {
    AhpModel::new(bytes, name)
}

/// Build information: crate version, tract version, whether the module was built with WebAssembly
/// SIMD (`simd128`).
#[wasm_bindgen(js_name = buildInfo)]
pub fn build_info() -> Result<JsValue, JsError> {
    to_js(&crate::BuildInfo::current())
}
