//! The HTTP server behind `ahp-serve` (axum + tokio).
//!
//! Routes:
//! * `POST /v1/classify[?top_k=N]`: the body is the image file (any `Content-Type`), or a
//!   `multipart/form-data` form whose first file field (preferably named `image` or `file`) is
//!   the image. Answer: `{"top": [{"label", "prob"}], "ms", "batch"}` (`batch`: how many images
//!   ran in the same micro-batch).
//! * `GET /v1/model`: labels, execution provider, preprocessing, metadata and server limits.
//! * `GET /v1/stats`: requests, images, model runs and the mean micro-batch size so far.
//! * `GET /healthz`: `{"status": "ok"}`.
//!
//! Errors are JSON, `{"error": message, "code": code}`, with a 4xx status for bad input (empty
//! body, undecodable image, oversized body, bad `top_k`, malformed multipart, unknown route).
//!
//! Limits: bodies over [`ServerConfig::max_body_bytes`] get 413; at most
//! [`ServerConfig::max_concurrency`] requests are processed at once (later ones wait for a slot
//! before their body is read, so memory stays bounded).
//!
//! Micro-batching: requests are decoded and preprocessed concurrently on tokio's blocking pool,
//! then queued. A batcher task takes the first queued image, waits for a free session, then
//! collects whatever else is queued, waiting at most [`ServerConfig::batch_window`] for more, up
//! to [`ServerConfig::max_batch`] images, and runs them as one batch. Under load, images that
//! arrive while a batch runs form the next batch.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::Classifier;

/// Server limits and batching parameters.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body in bytes (default 16 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Requests processed at once (default 64); more wait for a slot.
    pub max_concurrency: usize,
    /// Most images per model run (default 8).
    pub max_batch: usize,
    /// How long the batcher waits for more images once it has one and a free session (default
    /// zero: only images already queued join the batch, which under load are the ones that
    /// arrived while the previous batch ran; a window > 0 adds its full length to the latency of
    /// a lone request).
    pub batch_window: Duration,
    /// `top_k` when the query has none (default 5, capped to the number of classes).
    pub default_top_k: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_concurrency: 64,
            max_batch: 8,
            batch_window: Duration::ZERO,
            default_top_k: 5,
        }
    }
}

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    images: AtomicU64,
    runs: AtomicU64,
}

type JobResult = Result<(Vec<f32>, usize), String>;

struct Job {
    pixels: Vec<f32>,
    reply: oneshot::Sender<JobResult>,
}

struct AppState {
    classifier: Arc<Classifier>,
    config: ServerConfig,
    limiter: Semaphore,
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

#[derive(Serialize)]
struct Prediction<'a> {
    label: &'a str,
    prob: f32,
}

/// The application: routes plus the batcher task (spawned on the current tokio runtime; it
/// stops when the router and all its clones are dropped).
pub fn router(classifier: Arc<Classifier>, config: ServerConfig) -> Router {
    let config = ServerConfig {
        max_batch: config.max_batch.max(1),
        max_concurrency: config.max_concurrency.max(1),
        default_top_k: config.default_top_k.max(1),
        ..config
    };
    let (tx, rx) = mpsc::channel(config.max_concurrency);
    let stats = Arc::new(Stats::default());
    tokio::spawn(batcher(
        rx,
        Arc::clone(&classifier),
        config.max_batch,
        config.batch_window,
        Arc::clone(&stats),
    ));
    let state = Arc::new(AppState {
        classifier,
        limiter: Semaphore::new(config.max_concurrency),
        config: config.clone(),
        jobs: tx,
        stats,
    });
    Router::new()
        .route("/v1/classify", post(classify).fallback(method_not_allowed))
        .route("/v1/model", get(model).fallback(method_not_allowed))
        .route("/v1/stats", get(stats_handler).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

/// Serves `router(classifier, config)` on `listener` until `shutdown` completes, then finishes
/// the requests in flight (graceful shutdown).
pub async fn serve(
    listener: TcpListener,
    classifier: Arc<Classifier>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(classifier, config);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on ctrl-c (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<Job>,
    classifier: Arc<Classifier>,
    max_batch: usize,
    window: Duration,
    stats: Arc<Stats>,
) {
    // One batch per session may run at once.
    let runners = Arc::new(Semaphore::new(classifier.num_sessions()));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = Arc::clone(&runners).acquire_owned().await else {
            break;
        };
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    jobs.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if window.is_zero() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                _ => break,
            }
        }
        let classifier = Arc::clone(&classifier);
        let stats = Arc::clone(&stats);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let n = jobs.len();
            let mut pixels = Vec::with_capacity(n * classifier.pixels_per_image());
            for job in &jobs {
                pixels.extend_from_slice(&job.pixels);
            }
            stats.runs.fetch_add(1, Ordering::Relaxed);
            stats.images.fetch_add(n as u64, Ordering::Relaxed);
            match classifier.logits(&pixels, n) {
                Ok(rows) => {
                    for (job, row) in jobs.into_iter().zip(rows) {
                        let _ = job.reply.send(Ok((row, n)));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for job in jobs {
                        let _ = job.reply.send(Err(message.clone()));
                    }
                }
            }
        });
    }
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
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "payload_too_large",
            format!("multipart body: {text}"),
        )
    } else {
        ApiError::new(
            status,
            "malformed_multipart",
            format!("multipart body: {text}"),
        )
    }
}

/// The image bytes of a request: the raw body, or the first file field of a multipart form.
async fn image_bytes(request: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if is_multipart {
        let mut form = Multipart::from_request(request, state)
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?;
        let mut fallback = None;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| multipart_error(e.status(), e.body_text()))?;
            let Some(field) = field else { break };
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
        return fallback.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_image",
                "multipart form has no file field (send the image as a field named `image`)",
            )
        });
    }
    Bytes::from_request(request, state).await.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                format!(
                    "request body exceeds the limit of {} bytes",
                    state.config.max_body_bytes
                ),
            )
        } else {
            ApiError::new(status, "bad_body", e.body_text())
        }
    })
}

async fn classify(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let result = classify_inner(&state, query, request).await;
    if result.is_err() {
        state.stats.errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn classify_inner(
    state: &Arc<AppState>,
    query: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let classifier = Arc::clone(&state.classifier);
    let top_k = parse_top_k(
        query.as_deref(),
        classifier.labels().len(),
        state.config.default_top_k,
    )?;
    let _slot = state.limiter.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server is shutting down",
        )
    })?;
    let bytes = image_bytes(request, state).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "empty request body: send the image file as the body (or as a multipart field `image`)",
        ));
    }
    let pre = Arc::clone(&classifier);
    let pixels = tokio::task::spawn_blocking(move || {
        let image = ahp_spec::preprocess::decode_image(&bytes, "request body")?;
        pre.preprocess(&image)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
            e.to_string(),
        )
    })?;

    let (reply, answer) = oneshot::channel();
    state.jobs.send(Job { pixels, reply }).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "batcher stopped",
        )
    })?;
    let (logits, batch) = answer
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "batch dropped",
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference_failed", e))?;
    let top = classifier.top_k(&logits, top_k);
    let top: Vec<Prediction<'_>> = top
        .iter()
        .map(|(label, prob)| Prediction { label, prob: *prob })
        .collect();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Json(json!({ "top": top, "ms": ms, "batch": batch })).into_response())
}

async fn model(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let c = &state.classifier;
    let (h, w) = c.image_size();
    let metadata: BTreeMap<&str, &str> = c
        .info()
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Json(json!({
        "model": c.model_name(),
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
            "max_batch": state.config.max_batch,
            "batch_window_ms": state.config.batch_window.as_secs_f64() * 1e3,
            "max_concurrency": state.config.max_concurrency,
            "max_body_bytes": state.config.max_body_bytes,
        },
    }))
}

async fn stats_handler(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let s = &state.stats;
    let images = s.images.load(Ordering::Relaxed);
    let runs = s.runs.load(Ordering::Relaxed);
    Json(json!({
        "requests": s.requests.load(Ordering::Relaxed),
        "errors": s.errors.load(Ordering::Relaxed),
        "images": images,
        "runs": runs,
        "mean_batch": if runs == 0 { 0.0 } else { images as f64 / runs as f64 },
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found(request: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {} (routes: POST /v1/classify, GET /v1/model, GET /v1/stats, GET /healthz)",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request<Body>) -> ApiError {
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
