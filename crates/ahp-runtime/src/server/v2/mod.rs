//! The KServe v2 / Open Inference Protocol over HTTP, with Triton's binary tensor and
//! classification extensions: what `tritonclient.http`, gateways and load testers speak.
//!
//! * `GET /v2`: server metadata; `GET /v2/health/live`, `GET /v2/health/ready`: 200 or 503.
//! * `GET /v2/models/{name}[/versions/1]`: model metadata (platform `onnxruntime_onnx`, inputs
//!   and outputs with datatypes and shapes, `-1` for the batch).
//! * `GET /v2/models/{name}[/versions/1]/ready`: 200 or 503; `.../config`: the model
//!   configuration in Triton's JSON form.
//! * `POST /v2/models/{name}[/versions/1]/infer`: JSON tensors, or a JSON header of
//!   `Inference-Header-Content-Length` bytes followed by the binary tensors; outputs as JSON or
//!   binary (`binary_data` per output, `binary_data_output` for all), `classification: k` for
//!   the top `k`. Requests go through the same micro-batcher as `/v1/classify`.
//! * `POST /v2/repository/index`: the one model and its state.
//!
//! Errors: `{"error": message}` with 400 (bad request, shape, datatype), 404 (unknown model or
//! version), 408, 413, 500 (model run failed) or 503 (not ready, timeout, shutting down).

mod request;
mod response;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};

use super::batcher::JobOutput;
use super::{ApiError, AppState};
use request::InputSpec;

/// The header of Triton's binary tensor extension: the length of the JSON part of the body.
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// An error answered in the protocol's form, `{"error": message}`.
#[derive(Debug)]
pub struct V2Error(ApiError);

impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> V2Error {
    V2Error(ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        message,
    ))
}

/// The `/v2` routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let model = "/v2/models/{name}";
    let version = "/v2/models/{name}/versions/{version}";
    let mut router = Router::new()
        .route("/v2", get(server_metadata).fallback(method_not_allowed))
        .route("/v2/health/live", get(live).fallback(method_not_allowed))
        .route("/v2/health/ready", get(ready).fallback(method_not_allowed))
        .route(
            "/v2/repository/index",
            post(index).fallback(method_not_allowed),
        );
    for base in [model, version] {
        router = router
            .route(base, get(model_metadata).fallback(method_not_allowed))
            .route(
                &format!("{base}/config"),
                get(model_config).fallback(method_not_allowed),
            )
            .route(
                &format!("{base}/ready"),
                get(model_ready).fallback(method_not_allowed),
            )
            .route(
                &format!("{base}/infer"),
                post(infer).fallback(method_not_allowed),
            );
    }
    router
}

async fn method_not_allowed(request: Request<Body>) -> V2Error {
    V2Error(super::v1::method_not_allowed(request).await)
}

/// The `{name}` (and `{version}`) of a model route.
type ModelPath = Result<Path<BTreeMap<String, String>>, PathRejection>;

/// Errors unless the path names the served model (and version `1`, if a version is given).
fn check_model(state: &AppState, path: ModelPath) -> Result<(), V2Error> {
    let Path(params) =
        path.map_err(|e| bad_request(format!("bad model path: {}", e.body_text())))?;
    let served = &state.config.model_name;
    let name = params.get("name").map_or("", String::as_str);
    let not_found =
        |message: String| V2Error(ApiError::new(StatusCode::NOT_FOUND, "not_found", message));
    if name != served {
        return Err(not_found(format!(
            "unknown model `{name}`: this server serves `{served}`"
        )));
    }
    match params.get("version").map(String::as_str) {
        None | Some("1") => Ok(()),
        Some(v) => Err(not_found(format!(
            "model `{served}` has no version `{v}` (versions: 1)"
        ))),
    }
}

fn not_ready() -> V2Error {
    V2Error(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "the model is not ready: its batcher has stopped",
    ))
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "ahp-serve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "classification"],
    }))
}

async fn live() -> StatusCode {
    StatusCode::OK
}

/// 200 when the batcher runs, else 503.
fn readiness(state: &AppState) -> Result<StatusCode, V2Error> {
    state
        .is_ready()
        .then_some(StatusCode::OK)
        .ok_or_else(not_ready)
}

async fn ready(State(state): State<Arc<AppState>>) -> Result<StatusCode, V2Error> {
    readiness(&state)
}

async fn model_ready(
    State(state): State<Arc<AppState>>,
    path: ModelPath,
) -> Result<StatusCode, V2Error> {
    check_model(&state, path)?;
    readiness(&state)
}

/// The model's outputs and their widths without the batch dimension (`-1`: not fixed by the
/// model), as metadata and configuration report them.
fn output_widths(c: &crate::Classifier) -> Vec<(&'static str, i64)> {
    let mut outputs = vec![(OUTPUT_LOGITS, c.labels().len() as i64)];
    if c.has_image_embeds() {
        outputs.push((
            OUTPUT_IMAGE_EMBEDS,
            c.image_embed_dim().map_or(-1, |p| p as i64),
        ));
    }
    outputs
}

async fn model_metadata(
    State(state): State<Arc<AppState>>,
    path: ModelPath,
) -> Result<Json<Value>, V2Error> {
    check_model(&state, path)?;
    let c = &state.classifier;
    let (h, w) = c.image_size();
    let outputs: Vec<Value> = output_widths(c)
        .into_iter()
        .map(|(name, width)| json!({ "name": name, "datatype": "FP32", "shape": [-1, width] }))
        .collect();
    Ok(Json(json!({
        "name": state.config.model_name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{ "name": INPUT_PIXEL_VALUES, "datatype": "FP32", "shape": [-1, 3, h, w] }],
        "outputs": outputs,
    })))
}

/// Triton's model configuration extension (`GET .../config`), as Triton's JSON form of the
/// `config.pbtxt` that `ahp-export --triton` writes: what `tritonclient`'s `get_model_config` and
/// load testers such as `perf_analyzer` read.
async fn model_config(
    State(state): State<Arc<AppState>>,
    path: ModelPath,
) -> Result<Json<Value>, V2Error> {
    check_model(&state, path)?;
    let c = &state.classifier;
    let (h, w) = c.image_size();
    let output: Vec<Value> = output_widths(c)
        .into_iter()
        .map(|(name, width)| json!({ "name": name, "data_type": "TYPE_FP32", "dims": [width] }))
        .collect();
    let config = &state.config;
    Ok(Json(json!({
        "name": config.model_name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": config.max_batch,
        "input": [{ "name": INPUT_PIXEL_VALUES, "data_type": "TYPE_FP32", "dims": [3, h, w] }],
        "output": output,
        "dynamic_batching": {
            "max_queue_delay_microseconds": config.batch_window.as_micros() as u64,
        },
        "instance_group": [{ "count": c.num_sessions(), "kind": "KIND_CPU" }],
    })))
}

async fn index(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<Value>, V2Error> {
    let body = {
        let _slot = state.admit().await?;
        state.body(request).await?
    };
    let only_ready = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("repository index request is not JSON: {e}")))?;
        match v.get("ready") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad_request(format!(
                    "`ready` must be true or false, got {other}"
                )))
            }
        }
    };
    let ready = state.is_ready();
    let models = if only_ready && !ready {
        vec![]
    } else {
        let state_name = if ready { "READY" } else { "UNAVAILABLE" };
        vec![json!({ "name": state.config.model_name, "version": "1", "state": state_name })]
    };
    Ok(Json(Value::Array(models)))
}

/// The `Inference-Header-Content-Length`, if given; errors on a compressed body.
fn binary_header(headers: &HeaderMap) -> Result<Option<usize>, V2Error> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if enc != "identity" {
            return Err(bad_request(format!(
                "Content-Encoding `{enc}` is not supported: send the request uncompressed"
            )));
        }
    }
    headers
        .get(HEADER_CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    bad_request(format!(
                        "Inference-Header-Content-Length must be a byte count, got {v:?}"
                    ))
                })
        })
        .transpose()
}

async fn infer(
    State(state): State<Arc<AppState>>,
    path: ModelPath,
    request: Request,
) -> Result<Response, V2Error> {
    let header_len = binary_header(request.headers());
    let work = async {
        let _slot = state.admit().await?;
        // The body is read before anything is refused, so a client still sending it gets the
        // answer rather than a reset connection.
        let body = state.body(request).await?;
        check_model(&state, path).map_err(|e| e.0)?;
        run_inference(&state, body, header_len.map_err(|e| e.0)?).await
    };
    state.within_request_timeout(work).await.map_err(V2Error)
}

/// Decodes the request (a large JSON body on the blocking pool), runs it through the
/// batcher and encodes the answer.
async fn run_inference(
    state: &Arc<AppState>,
    body: Bytes,
    header_len: Option<usize>,
) -> Result<Response, ApiError> {
    let c = &state.classifier;
    let (height, width) = c.image_size();
    let spec = InputSpec {
        height,
        width,
        max_batch: state.config.max_batch,
    };
    let ctx = Arc::new(Ctx {
        classifier: Arc::clone(c),
        model_name: state.config.model_name.clone(),
    });
    let json_len = header_len.unwrap_or(body.len());
    let decoded = if json_len <= INLINE_JSON_BYTES {
        ctx.decode(&body, header_len, spec)
    } else {
        // A large JSON body takes milliseconds to parse: on the blocking pool, at most
        // `decode_concurrency` at once (as images on /v1), not on an async worker.
        let permit = Arc::clone(&state.decoders)
            .acquire_owned()
            .await
            .map_err(|_| super::shutting_down())?;
        let ctx = Arc::clone(&ctx);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            ctx.decode(&body, header_len, spec)
        })
        .await
        .map_err(internal)?
    }
    .map_err(bad_request_error)?;
    let out = state.infer(decoded.pixels, decoded.images).await?;
    let request = decoded.request;
    let values: usize = out.logits.iter().map(Vec::len).sum::<usize>()
        + out
            .image_embeds
            .iter()
            .flatten()
            .map(Vec::len)
            .sum::<usize>();
    let encoded = if values <= INLINE_OUTPUT_VALUES {
        ctx.encode(&request, out)
    } else {
        tokio::task::spawn_blocking(move || ctx.encode(&request, out))
            .await
            .map_err(internal)?
    }
    .map_err(bad_request_error)?;
    Ok(respond(encoded))
}

/// JSON parts up to this size are decoded on the async worker (tens of microseconds); larger
/// ones on the blocking pool.
const INLINE_JSON_BYTES: usize = 64 << 10;
/// Responses of up to this many output values are encoded on the async worker.
const INLINE_OUTPUT_VALUES: usize = 16 << 10;

/// What decoding and encoding need, shareable with the blocking pool.
struct Ctx {
    classifier: Arc<crate::Classifier>,
    model_name: String,
}

impl Ctx {
    fn context(&self) -> response::Context<'_> {
        response::Context {
            model_name: &self.model_name,
            labels: self.classifier.labels(),
        }
    }

    /// Decodes and checks the request, its requested outputs included (before the model runs).
    fn decode(
        &self,
        body: &[u8],
        header_len: Option<usize>,
        spec: InputSpec,
    ) -> Result<request::Decoded, String> {
        let decoded = request::decode(body, header_len, spec)?;
        let nothing = JobOutput {
            logits: Vec::new(),
            image_embeds: self.classifier.has_image_embeds().then(Vec::new),
            batch: 0,
        };
        response::encode(&self.context(), &decoded.request, nothing)?;
        Ok(decoded)
    }

    fn encode(
        &self,
        request: &request::InferRequest,
        out: JobOutput,
    ) -> Result<response::Encoded, String> {
        response::encode(&self.context(), request, out)
    }
}

fn bad_request_error(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn internal(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// The HTTP answer: JSON, or the JSON header and the binary outputs after it.
fn respond(encoded: response::Encoded) -> Response {
    if encoded.binary.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], encoded.header).into_response();
    }
    let header_len = encoded.header.len().to_string();
    let mut body = encoded.header;
    body.extend_from_slice(&encoded.binary);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static(HEADER_CONTENT_LENGTH),
                header_len,
            ),
        ],
        body,
    )
        .into_response()
}
