//! The server's metrics: counters and histograms kept in memory, `GET /metrics` in the
//! Prometheus text exposition format (0.0.4), and the middleware that counts every request.
//!
//! Metrics (all prefixed `ahp_`):
//! * `http_requests_total{route,method,status}` (counter) and
//!   `http_request_duration_seconds{route}` (histogram): every request, `route` being the
//!   route's pattern (`/v2/models/{name}/infer`) or `unmatched`;
//! * `http_requests_in_flight` (gauge);
//! * `inference_queue_duration_seconds` (histogram): how long a request's images waited for a
//!   model run; `inference_run_duration_seconds` (histogram): one model run;
//!   `inference_batch_size` (histogram): images per model run;
//! * `inference_images_total`, `inference_runs_total`, `inference_run_failures_total`
//!   (counters);
//! * `model_ready{model,version}` (gauge, 1 or 0) and
//!   `model_info{model,version,execution_provider,classes,sessions}` (gauge, always 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Upper bounds of the latency histograms, in seconds.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Upper bounds of the batch-size histogram.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A Prometheus histogram: counts per bucket (not cumulative), sum and count.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of this histogram with `labels` (`k="v",...`
    /// or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// `(route, method, status)` of a counted request.
type RequestKey = (String, String, u16);

/// Everything the server counts; shared by the handlers, the batcher and `GET /metrics`.
#[derive(Debug)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    request_seconds: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
    queue_seconds: Mutex<Histogram>,
    run_seconds: Mutex<Histogram>,
    batch_size: Mutex<Histogram>,
    pub(crate) images: AtomicU64,
    pub(crate) runs: AtomicU64,
    run_failures: AtomicU64,
    /// `POST /v1/classify` requests and those answered with an error (`GET /v1/stats`).
    pub(crate) classify_requests: AtomicU64,
    pub(crate) classify_errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            request_seconds: Mutex::default(),
            in_flight: AtomicI64::new(0),
            queue_seconds: Mutex::new(Histogram::new(SECONDS)),
            run_seconds: Mutex::new(Histogram::new(SECONDS)),
            batch_size: Mutex::new(Histogram::new(BATCH)),
            images: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            run_failures: AtomicU64::new(0),
            classify_requests: AtomicU64::new(0),
            classify_errors: AtomicU64::new(0),
        }
    }
}

/// Locks a metrics mutex; a panic elsewhere while it was held leaves counts that are still
/// worth reporting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// One finished request (the label strings are allocated only the first time a route,
    /// method and status are seen).
    fn observe_request(&self, route: &str, method: &str, status: StatusCode, elapsed: Duration) {
        let status = status.as_u16();
        {
            let mut requests = lock(&self.requests);
            let counted = requests
                .iter_mut()
                .find(|((r, m, s), _)| r == route && m == method && *s == status);
            match counted {
                Some((_, n)) => *n += 1,
                None => {
                    requests.insert((route.to_string(), method.to_string(), status), 1);
                }
            }
        }
        let mut seconds = lock(&self.request_seconds);
        if !seconds.contains_key(route) {
            seconds.insert(route.to_string(), Histogram::new(SECONDS));
        }
        if let Some(h) = seconds.get_mut(route) {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// A model run of `images` images that took `elapsed`, successful or not.
    pub(crate) fn observe_run(&self, images: usize, elapsed: Duration, ok: bool) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.images.fetch_add(images as u64, Ordering::Relaxed);
        if !ok {
            self.run_failures.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.run_seconds).observe(elapsed.as_secs_f64());
        lock(&self.batch_size).observe(images as f64);
    }

    /// A request's images waited `waited` in the queue before their model run started.
    pub(crate) fn observe_queue(&self, waited: Duration) {
        lock(&self.queue_seconds).observe(waited.as_secs_f64());
    }
}

/// Decrements the in-flight gauge when the request ends, however it ends (a client that leaves
/// drops the future).
struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware (`Router::layer`, so it runs after routing and sees the matched route): counts
/// the request, its status and its duration.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // MatchedPath is a shared string: cloning it does not copy the route.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Only the standard methods become label values: a client inventing methods cannot grow
    // the label set.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let metrics = &state.metrics;
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&metrics.in_flight);
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(route, method, response.status(), start.elapsed());
    response
}

/// `GET /metrics`.
pub(crate) async fn handler(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
        .into_response()
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `# HELP` and `# TYPE` of one metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition.
fn render(state: &AppState) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    render_http(m, &mut out);
    render_inference(m, &mut out);
    render_model(state, &mut out);
    out
}

fn render_http(m: &Metrics, out: &mut String) {
    family(
        out,
        "ahp_http_requests_total",
        "counter",
        "HTTP requests answered, by route pattern, method and status.",
    );
    for ((route, method, status), n) in lock(&m.requests).iter() {
        let _ = writeln!(
            out,
            "ahp_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            escape(route),
            escape(method)
        );
    }
    family(
        out,
        "ahp_http_request_duration_seconds",
        "histogram",
        "Time from routing to the response head, by route pattern.",
    );
    for (route, h) in lock(&m.request_seconds).iter() {
        h.render(
            out,
            "ahp_http_request_duration_seconds",
            &format!("route=\"{}\"", escape(route)),
        );
    }
    family(
        out,
        "ahp_http_requests_in_flight",
        "gauge",
        "Requests being processed now.",
    );
    let _ = writeln!(
        out,
        "ahp_http_requests_in_flight {}",
        m.in_flight.load(Ordering::Relaxed)
    );
}

fn render_inference(m: &Metrics, out: &mut String) {
    family(
        out,
        "ahp_inference_queue_duration_seconds",
        "histogram",
        "Time a request's images waited for their model run.",
    );
    lock(&m.queue_seconds).render(out, "ahp_inference_queue_duration_seconds", "");
    family(
        out,
        "ahp_inference_run_duration_seconds",
        "histogram",
        "Duration of one model run (one micro-batch).",
    );
    lock(&m.run_seconds).render(out, "ahp_inference_run_duration_seconds", "");
    family(
        out,
        "ahp_inference_batch_size",
        "histogram",
        "Images per model run.",
    );
    lock(&m.batch_size).render(out, "ahp_inference_batch_size", "");
    let counters = [
        (
            "ahp_inference_images_total",
            "Images run through the model.",
            &m.images,
        ),
        (
            "ahp_inference_runs_total",
            "Model runs (micro-batches).",
            &m.runs,
        ),
        (
            "ahp_inference_run_failures_total",
            "Model runs that failed.",
            &m.run_failures,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
}

fn render_model(state: &AppState, out: &mut String) {
    let model = escape(&state.config.model_name);
    let ready = u8::from(state.is_ready());
    family(
        out,
        "ahp_model_ready",
        "gauge",
        "1 when the model is loaded and its batcher runs, else 0.",
    );
    let _ = writeln!(
        out,
        "ahp_model_ready{{model=\"{model}\",version=\"1\"}} {ready}"
    );
    family(
        out,
        "ahp_model_info",
        "gauge",
        "The model served (always 1).",
    );
    let c = &state.classifier;
    let _ = writeln!(
        out,
        "ahp_model_info{{model=\"{model}\",version=\"1\",execution_provider=\"{}\",classes=\"{}\",sessions=\"{}\"}} 1",
        c.execution_provider(),
        c.labels().len(),
        c.num_sessions()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_lines_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.5, 7.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 1\nx_bucket{a=\"b\",le=\"2\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 10.5\nx_count{a=\"b\"} 4\n"
        );
        let mut out = String::new();
        Histogram::new(&[1.0]).render(&mut out, "y", "");
        assert_eq!(
            out,
            "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
