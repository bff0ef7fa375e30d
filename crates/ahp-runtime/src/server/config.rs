//! [`ServerConfig`]: the server's limits, batching parameters and model name, with their
//! defaults and ranges.

use std::time::Duration;

use ahp_spec::preprocess::ImageLimits;

/// Server limits and batching parameters.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model's name in the KServe v2 routes (`/v2/models/{name}/...`), version `1`; a plain
    /// name of ASCII letters, digits, `_`, `-` and `.` (default `ahp`; `ahp-serve` uses the
    /// model file's stem, as `ahp-export --triton` does).
    pub model_name: String,
    /// Largest accepted request body in bytes (default 16 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Requests processed at once (default 64); more wait for a slot.
    pub max_concurrency: usize,
    /// Most images per model run (default 8); also the largest batch one v2 request may send.
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
    /// Time a classification or inference may take in all: body, decoding, queueing and
    /// inference (default 60 s); then 503.
    pub request_timeout: Duration,
    /// On shutdown, how long requests in flight may still take (default 10 s); the rest are
    /// dropped.
    pub shutdown_grace: Duration,
}

/// Longest accepted [`ServerConfig::batch_window`].
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(10);
/// Largest accepted [`ServerConfig::max_batch`].
pub const MAX_BATCH: usize = 4096;
/// Longest accepted timeout or grace period.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_name: "ahp".to_string(),
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
        check_model_name(&self.model_name)?;
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
        if self.max_batch > MAX_BATCH {
            return Err(format!(
                "max_batch must be at most {MAX_BATCH}, got {}",
                self.max_batch
            ));
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

/// Errors unless `name` can be a URL path segment as is: 1 to 128 ASCII letters, digits, `_`,
/// `-` and `.`, not starting with `.`.
pub fn check_model_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if name.is_empty() || name.len() > 128 || !plain || name.starts_with('.') {
        return Err(format!(
            "model_name {name:?} must be 1 to 128 ASCII letters, digits, `_`, `-` and `.`, not starting with `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for good in ["ahp", "ahp_clip", "clip-tiny.b", "A1"] {
            assert!(check_model_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", "x?y", &"a".repeat(129)] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
    }
}
