//! ahp's own routes: `POST /v1/classify`, `GET /v1/model`, `GET /v1/stats`, `GET /healthz`
//! (see [`super`] for what they answer). Errors are `{"error": message, "code": code}`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::AppState;

/// An error answer: its status, a stable machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.message, "code": self.code })),
        )
            .into_response()
    }
}

#[derive(Serialize)]
struct Prediction<'a> {
    label: &'a str,
    prob: f32,
}

/// The `/v1` routes and `/healthz`.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/classify", post(classify).fallback(method_not_allowed))
        .route("/v1/model", get(model).fallback(method_not_allowed))
        .route("/v1/stats", get(stats).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
}

fn parse_top_k(query: Option<&str>, num_classes: usize, default: usize) -> Result<usize, ApiError> {
    let mut top_k = default.min(num_classes);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "top_k" {
            continue;
        }
        top_k = value
            .parse::<usize>()
            .ok()
            .filter(|k| (1..=num_classes).contains(k))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_top_k",
                    format!("top_k must be an integer from 1 to {num_classes}, got {value:?}"),
                )
            })?;
    }
    Ok(top_k)
}

fn multipart_error(status: StatusCode, text: String) -> ApiError {
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "malformed_multipart"
    };
    ApiError::new(status, code, format!("multipart body: {text}"))
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The image of a multipart form: the field named `image` or `file`, else the first file field.
async fn multipart_image(request: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text()))?;
    let mut fallback = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text()))?
    {
        let preferred = matches!(field.name(), Some("image" | "file"));
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?;
        if preferred {
            return Ok(data);
        }
        if is_file && fallback.is_none() {
            fallback = Some(data);
        }
    }
    fallback.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_image",
            "multipart form has no file field (send the image as a field named `image`)",
        )
    })
}

/// The image bytes of a request: the raw body, or the image of a multipart form.
async fn image_bytes(request: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    let bytes = if is_multipart(&request) {
        state
            .within_body_timeout(multipart_image(request, state))
            .await?
    } else {
        state.body(request).await?
    };
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "empty request body: send the image file as the body (or as a multipart field `image`)",
        ));
    }
    Ok(bytes)
}

async fn classify(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let metrics = &state.metrics;
    metrics.classify_requests.fetch_add(1, Ordering::Relaxed);
    let result = state
        .within_request_timeout(classify_inner(&state, query, request))
        .await;
    if result.is_err() {
        metrics.classify_errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn classify_inner(
    state: &Arc<AppState>,
    query: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let classifier = &state.classifier;
    let top_k = parse_top_k(
        query.as_deref(),
        classifier.labels().len(),
        state.config.default_top_k,
    )?;
    let _slot = state.admit().await?;
    let bytes = image_bytes(request, state).await?;
    let pixels = decode(state, bytes).await?;
    let out = state.infer(pixels, 1).await?;
    let logits = out.logits.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the model run returned no row for this image",
        )
    })?;
    let top = classifier.top_k(logits, top_k);
    let top: Vec<Prediction<'_>> = top
        .iter()
        .map(|(label, prob)| Prediction { label, prob: *prob })
        .collect();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Json(json!({ "top": top, "ms": ms, "batch": out.batch })).into_response())
}

/// Decodes and preprocesses the image on the blocking pool, at most `decode_concurrency` at once.
async fn decode(state: &Arc<AppState>, bytes: Bytes) -> Result<Vec<f32>, ApiError> {
    let permit = Arc::clone(&state.decoders)
        .acquire_owned()
        .await
        .map_err(|_| super::shutting_down())?;
    let classifier = Arc::clone(&state.classifier);
    let limits = state.config.image_limits;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let image = ahp_spec::preprocess::decode_image_with(&bytes, "request body", &limits)?;
        classifier.preprocess(&image)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
            e.to_string(),
        )
    })
}

async fn model(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let c = &state.classifier;
    let config = &state.config;
    let (h, w) = c.image_size();
    let metadata: BTreeMap<&str, &str> = c
        .info()
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Json(json!({
        "model": c.model_name(),
        "name": config.model_name,
        "labels": c.labels(),
        "num_classes": c.labels().len(),
        "execution_provider": c.execution_provider(),
        "image_size": [h, w],
        "preprocess": c.preprocess_config(),
        "metadata": metadata,
        "has_image_embeds": c.has_image_embeds(),
        "ort_library": c.ort_library(),
        "server": {
            "sessions": c.num_sessions(),
            "max_batch": config.max_batch,
            "batch_window_ms": config.batch_window.as_secs_f64() * 1e3,
            "max_concurrency": config.max_concurrency,
            "max_body_bytes": config.max_body_bytes,
            "max_image_pixels": config.image_limits.max_pixels,
            "decode_concurrency": config.decode_concurrency,
            "header_timeout_s": config.header_timeout.as_secs_f64(),
            "body_timeout_s": config.body_timeout.as_secs_f64(),
            "request_timeout_s": config.request_timeout.as_secs_f64(),
        },
    }))
}

async fn stats(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let m = &state.metrics;
    let images = m.images.load(Ordering::Relaxed);
    let runs = m.runs.load(Ordering::Relaxed);
    Json(json!({
        "requests": m.classify_requests.load(Ordering::Relaxed),
        "errors": m.classify_errors.load(Ordering::Relaxed),
        "images": images,
        "runs": runs,
        "mean_batch": if runs == 0 { 0.0 } else { images as f64 / runs as f64 },
    }))
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "reason": "the batcher has stopped: classifications cannot be answered",
            })),
        )
            .into_response()
    }
}

/// A known route with a method it does not take: 405.
pub(crate) async fn method_not_allowed(request: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_query() {
        assert_eq!(parse_top_k(None, 6, 5).ok(), Some(5));
        assert_eq!(parse_top_k(None, 3, 5).ok(), Some(3));
        assert_eq!(parse_top_k(Some("top_k=2"), 6, 5).ok(), Some(2));
        assert_eq!(parse_top_k(Some("x=1&top_k=6"), 6, 5).ok(), Some(6));
        for bad in ["top_k=0", "top_k=7", "top_k=-1", "top_k=abc", "top_k="] {
            let err = parse_top_k(Some(bad), 6, 5).expect_err(bad);
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.code, "invalid_top_k");
        }
    }
}
