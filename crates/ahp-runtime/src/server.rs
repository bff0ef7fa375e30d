//! The HTTP server behind `ahp-serve` (axum + tokio).
//!
//! Routes:
//! * `POST /v1/classify[?top_k=N]`: the body is the image file (any `Content-Type`), or a
//!   `multipart/form-data` form whose first file field (preferably named `image` or `file`) is
//!   the image. Answer: `{"top": [{"label", "prob"}], "ms", "batch"}` (`batch`: how many images
//!   ran in the same micro-batch).
//! * `GET /v1/model`: labels, execution provider, preprocessing, metadata and server limits.
//! * `GET /v1/stats`: requests, images, model runs and the mean micro-batch size so far.
//! * `GET /healthz`: `{"status": "ok"}`, or 503 `{"status": "unavailable", ...}` when the
//!   batcher has stopped (the server cannot answer a classification).
//!
//! Errors are JSON, `{"error": message, "code": code}`, with a 4xx status for bad input (empty
//! body, undecodable image, oversized body, bad `top_k`, malformed multipart, unknown route).
//!
//! Limits (all in [`ServerConfig`], checked by [`ServerConfig::validate`]): bodies over
//! `max_body_bytes` get 413; images over [`ImageLimits`] get 422 before they are decoded; at
//! most `max_concurrency` requests are processed at once (later ones wait for a slot before
//! their body is read) and at most `decode_concurrency` images are decoded at once, so memory
//! is bounded by `max_concurrency x max_body_bytes + decode_concurrency x` (the largest allowed
//! decoded image). Slow clients are cut off: headers must arrive within `header_timeout`, the
//! body within `body_timeout` (408), and a request that takes longer than `request_timeout` in
//! all gets 503. On shutdown, requests in flight get `shutdown_grace` to finish.
//!
//! Micro-batching: requests are decoded and preprocessed concurrently on tokio's blocking pool,
//! then queued. A batcher task takes the first queued image, waits for a free session, then
//! collects whatever else is queued, waiting at most [`ServerConfig::batch_window`] for more, up
//! to [`ServerConfig::max_batch`] images, and runs them as one batch. Under load, images that
//! arrive while a batch runs form the next batch.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use ahp_spec::preprocess::ImageLimits;

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
    /// Bounds on each request's image (pixels and bytes).
    pub image_limits: ImageLimits,
    /// Images decoded and preprocessed at once (default: the number of cores).
    pub decode_concurrency: usize,
    /// Time a client has to send its request headers (default 10 s); then the connection is
    /// closed.
    pub header_timeout: Duration,
    /// Time a client has to send its whole body once the request is admitted (default 30 s);
    /// then 408.
    pub body_timeout: Duration,
    /// Time a classification may take in all: body, decoding, queueing and inference (default
    /// 60 s); then 503.
    pub request_timeout: Duration,
    /// On shutdown, how long requests in flight may still take (default 10 s); the rest are
    /// dropped.
    pub shutdown_grace: Duration,
}

/// Longest accepted [`ServerConfig::batch_window`].
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(10);
/// Longest accepted timeout or grace period.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_concurrency: 64,
            max_batch: 8,
            batch_window: Duration::ZERO,
            default_top_k: 5,
            image_limits: ImageLimits::default(),
            decode_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Checks every value against its range; the error names the field and the range.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_concurrency", self.max_concurrency),
            ("max_batch", self.max_batch),
            ("default_top_k", self.default_top_k),
            ("decode_concurrency", self.decode_concurrency),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.batch_window > MAX_BATCH_WINDOW {
            return Err(format!(
                "batch_window must be at most {} ms, got {} ms",
                MAX_BATCH_WINDOW.as_millis(),
                self.batch_window.as_secs_f64() * 1e3
            ));
        }
        let timeouts = [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("request_timeout", self.request_timeout),
            ("shutdown_grace", self.shutdown_grace),
        ];
        for (name, value) in timeouts {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(format!(
                    "{name} must be more than 0 and at most {} s, got {} s",
                    MAX_TIMEOUT.as_secs(),
                    value.as_secs_f64()
                ));
            }
        }
        Ok(())
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
    decoders: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    batcher_alive: Arc<AtomicBool>,
}

/// Clears the batcher's liveness flag when the batcher ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[derive(Serialize)]
struct Prediction<'a> {
    label: &'a str,
    prob: f32,
}

/// The application: routes plus the batcher task (spawned on the current tokio runtime; it
/// stops when the router and all its clones are dropped). `config` must pass
/// [`ServerConfig::validate`].
pub fn router(classifier: Arc<Classifier>, config: ServerConfig) -> Result<Router, String> {
    config.validate()?;
    let (tx, rx) = mpsc::channel(config.max_concurrency);
    let stats = Arc::new(Stats::default());
    let batcher_alive = Arc::new(AtomicBool::new(true));
    tokio::spawn(batcher(
        rx,
        Arc::clone(&classifier),
        config.max_batch,
        config.batch_window,
        Arc::clone(&stats),
        AliveGuard(Arc::clone(&batcher_alive)),
    ));
    let state = Arc::new(AppState {
        classifier,
        limiter: Semaphore::new(config.max_concurrency),
        decoders: Arc::new(Semaphore::new(config.decode_concurrency)),
        config: config.clone(),
        jobs: tx,
        stats,
        batcher_alive,
    });
    Ok(Router::new()
        .route("/v1/classify", post(classify).fallback(method_not_allowed))
        .route("/v1/model", get(model).fallback(method_not_allowed))
        .route("/v1/stats", get(stats_handler).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state))
}

/// Serves `router(classifier, config)` on `listener` until `shutdown` completes, then gives the
/// requests in flight [`ServerConfig::shutdown_grace`] to finish (graceful shutdown with a
/// deadline: a stalled client cannot keep the server alive). Each connection must send its
/// headers within [`ServerConfig::header_timeout`].
pub async fn serve(
    listener: TcpListener,
    classifier: Arc<Classifier>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(classifier, config.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then accept again.
                    log::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!(
            "shutdown: requests still in flight after {} s were dropped",
            config.shutdown_grace.as_secs_f64()
        );
    }
    Ok(())
}

/// Completes on ctrl-c (SIGINT) or, on Unix, SIGTERM. The handlers are installed when this is
/// called (inside a tokio runtime), not when the future is first polled, so a signal that
/// arrives right after the server announced its address is not lost (it would kill the process).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut int, mut term) = signals;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int.take()) => {},
                () = wait(term.take()) => {},
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<Job>,
    classifier: Arc<Classifier>,
    max_batch: usize,
    window: Duration,
    stats: Arc<Stats>,
    _alive: AliveGuard,
) {
    // One batch per session may run at once.
    let runners = Arc::new(Semaphore::new(classifier.num_sessions()));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = Arc::clone(&runners).acquire_owned().await else {
            break;
        };
        let mut jobs = vec![first];
        // `window` is bounded by `validate`; an overflow would mean "no deadline to wait for".
        let deadline = tokio::time::Instant::now().checked_add(window);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    jobs.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let Some(deadline) = deadline.filter(|_| !window.is_zero()) else {
                break;
            };
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                _ => break,
            }
        }
        // Requests that timed out or whose client left are not run.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
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
    let budget = state.config.request_timeout;
    let result = tokio::time::timeout(budget, classify_inner(&state, query, request))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than the server's limit of {} s",
                    budget.as_secs_f64()
                ),
            ))
        });
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
    let body_timeout = state.config.body_timeout;
    let bytes = tokio::time::timeout(body_timeout, image_bytes(request, state))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    body_timeout.as_secs_f64()
                ),
            )
        })??;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "empty request body: send the image file as the body (or as a multipart field `image`)",
        ));
    }
    let pixels = decode(state, bytes).await?;
    let (reply, answer) = oneshot::channel();
    state.jobs.send(Job { pixels, reply }).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the batcher has stopped (the server is shutting down or broken; see GET /healthz)",
        )
    })?;
    let (logits, batch) = answer
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the batcher dropped this request without a result (a model run failed; see the server log); retry",
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

/// Decodes and preprocesses the image on the blocking pool, at most `decode_concurrency` at once.
async fn decode(state: &Arc<AppState>, bytes: Bytes) -> Result<Vec<f32>, ApiError> {
    let permit = Arc::clone(&state.decoders)
        .acquire_owned()
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "server is shutting down",
            )
        })?;
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
            "max_image_pixels": state.config.image_limits.max_pixels,
            "decode_concurrency": state.config.decode_concurrency,
            "header_timeout_s": state.config.header_timeout.as_secs_f64(),
            "body_timeout_s": state.config.body_timeout.as_secs_f64(),
            "request_timeout_s": state.config.request_timeout.as_secs_f64(),
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

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.batcher_alive.load(Ordering::SeqCst) {
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
