//! The HTTP server behind `ahp-serve` (axum + tokio).
//!
//! Routes of ahp's own API (errors `{"error": message, "code": code}`, see [`v1`]):
//! * `POST /v1/classify[?top_k=N]`: the body is the image file (any `Content-Type`), or a
//!   `multipart/form-data` form whose first file field (preferably named `image` or `file`) is
//!   the image. Answer: `{"top": [{"label", "prob"}], "ms", "batch"}` (`batch`: how many images
//!   ran in the same micro-batch).
//! * `GET /v1/model`: labels, execution provider, preprocessing, metadata and server limits.
//! * `GET /v1/stats`: requests, images, model runs and the mean micro-batch size so far.
//! * `GET /healthz`: `{"status": "ok"}`, or 503 `{"status": "unavailable", ...}` when the
//!   batcher has stopped (the server cannot answer a classification).
//!
//! The KServe v2 / Open Inference Protocol over HTTP (errors `{"error": message}`, see [`v2`]),
//! for standard clients (`tritonclient.http`), gateways and load testers: `GET /v2`,
//! `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}[/versions/1]` (metadata),
//! `.../ready`, `POST .../infer` (JSON tensors and Triton's binary tensor extension, the
//! classification extension), `POST /v2/repository/index`. The model is
//! [`ServerConfig::model_name`], version `1`; its tensors are the ONNX file's (`pixel_values`
//! FP32 `[-1, 3, H, W]` in, `logits` and `image_embeds` FP32 out), as in a Triton repository
//! written by `ahp-export --triton`.
//!
//! `GET /metrics`: Prometheus text format ([`metrics`] lists the metrics).
//!
//! Limits (all in [`ServerConfig`], checked by [`ServerConfig::validate`]): bodies over
//! `max_body_bytes` get 413; images over [`ImageLimits`](ahp_spec::preprocess::ImageLimits) get
//! 422 before they are decoded; a v2 request of more than `max_batch` images gets 400; at most
//! `max_concurrency` classifications and inferences are processed at once (later ones wait for a
//! slot before their body is read) and at most `decode_concurrency` images are decoded at once,
//! so memory is bounded by `max_concurrency x max_body_bytes + decode_concurrency x` (the
//! largest allowed decoded image). Slow clients are cut off: headers must arrive within
//! `header_timeout`, the body within `body_timeout` (408), and a request that takes longer than
//! `request_timeout` in all gets 503. On shutdown, requests in flight get `shutdown_grace` to
//! finish.
//!
//! Micro-batching ([`batcher`]): v1 images and v2 tensors are queued as jobs; a thread per
//! session packs them into model runs of at most `max_batch` images.

mod batcher;
mod config;
pub mod metrics;
pub mod v1;
pub mod v2;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore, SemaphorePermit};

use crate::Classifier;
use batcher::{AliveGuard, Batcher, Job, JobOutput};
pub use config::{check_model_name, ServerConfig, MAX_BATCH, MAX_BATCH_WINDOW, MAX_TIMEOUT};
use metrics::Metrics;
pub use v1::ApiError;

/// What every handler shares.
pub(crate) struct AppState {
    classifier: Arc<Classifier>,
    config: ServerConfig,
    limiter: Semaphore,
    decoders: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    batcher_alive: Arc<AtomicBool>,
}

impl AppState {
    /// Whether classifications and inferences can be answered (the batcher runs).
    fn is_ready(&self) -> bool {
        self.batcher_alive.load(Ordering::SeqCst)
    }

    /// A processing slot (at most `max_concurrency` requests hold one).
    async fn admit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.limiter.acquire().await.map_err(|_| shutting_down())
    }

    /// The raw request body, within `body_timeout` and `max_body_bytes`.
    async fn body(self: &Arc<Self>, request: Request) -> Result<Bytes, ApiError> {
        let limit = self.config.max_body_bytes;
        let read = async {
            Bytes::from_request(request, self).await.map_err(|e| {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        "payload_too_large",
                        format!("request body exceeds the limit of {limit} bytes"),
                    )
                } else {
                    ApiError::new(status, "bad_body", e.body_text())
                }
            })
        };
        self.within_body_timeout(read).await
    }

    /// `read` (a body being received), or 408 after `body_timeout`.
    async fn within_body_timeout<T>(
        &self,
        read: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let limit = self.config.body_timeout;
        tokio::time::timeout(limit, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            )
        })?
    }

    /// `work` (a whole classification or inference), or 503 after `request_timeout`.
    async fn within_request_timeout<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let limit = self.config.request_timeout;
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than the server's limit of {} s",
                    limit.as_secs_f64()
                ),
            ))
        })
    }

    /// Queues `images` preprocessed images for the batcher and waits for their outputs.
    async fn infer(&self, pixels: Vec<f32>, images: usize) -> Result<JobOutput, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            pixels,
            images,
            enqueued: Instant::now(),
            reply,
        };
        self.jobs.send(job).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the batcher has stopped (the server is shutting down or broken; see GET /healthz)",
            )
        })?;
        answer
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the batcher dropped this request without a result (a model run failed; see the server log); retry",
                )
            })?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference_failed", e))
    }
}

/// The error of a request that arrives while the server shuts down.
fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "server is shutting down",
    )
}

/// The application: routes plus the batch threads (one per session; they stop when the router
/// and all its clones are dropped). `config` must pass [`ServerConfig::validate`].
pub fn router(classifier: Arc<Classifier>, config: ServerConfig) -> Result<Router, String> {
    config.validate()?;
    let metrics = Arc::new(Metrics::default());
    let batcher_alive = Arc::new(AtomicBool::new(true));
    let batcher = Batcher {
        classifier: Arc::clone(&classifier),
        max_batch: config.max_batch,
        window: config.batch_window,
        metrics: Arc::clone(&metrics),
        alive: AliveGuard(Arc::clone(&batcher_alive)),
    };
    let tx = batcher
        .start()
        .map_err(|e| format!("cannot start the batch threads: {e}"))?;
    let state = Arc::new(AppState {
        classifier,
        limiter: Semaphore::new(config.max_concurrency),
        decoders: Arc::new(Semaphore::new(config.decode_concurrency)),
        config: config.clone(),
        jobs: tx,
        metrics,
        batcher_alive,
    });
    let routes = v1::routes()
        .merge(v2::routes())
        .route(
            "/metrics",
            get(metrics::handler).fallback(v1::method_not_allowed),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes));
    Ok(routes.with_state(state))
}

/// Unknown routes: 404, in the v2 error form under `/v2`, else in ahp's.
async fn not_found(request: Request<Body>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    if path == "/v2" || path.starts_with("/v2/") {
        return v2::V2Error::from(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {path}", request.method()),
        ))
        .into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {path} (routes: POST /v1/classify, GET /v1/model, GET /v1/stats, GET /healthz, GET /metrics, /v2/...)",
            request.method(),
        ),
    )
    .into_response()
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
