//! `ahp-serve`: an HTTP server classifying images with an exported ahp model on ONNX Runtime.
//! See `ahp_runtime::server` for the routes, limits and micro-batching.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ahp_runtime::cli::ImageLimitArgs;
use ahp_runtime::server::{self, ServerConfig};
use ahp_runtime::{Classifier, ExecutionProvider};
use anyhow::Context;
use clap::Parser;

/// Serve an exported ahp model (ONNX) over HTTP: POST /v1/classify, GET /v1/model,
/// GET /v1/stats, GET /healthz. Stops gracefully on SIGTERM or ctrl-c.
///
/// ONNX Runtime is loaded from ORT_DYLIB_PATH or from the directory scripts/fetch-onnxruntime.sh
/// fills (${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}).
#[derive(Debug, Parser)]
#[command(name = "ahp-serve", version)]
struct Args {
    /// The exported model (.onnx, with ahp.* metadata).
    model: std::path::PathBuf,
    /// Address to listen on (port 0: any free port; the actual address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Preferred execution provider; falls back to the next ones (tensorrt → cuda → cpu)
    /// unless --strict. Default: the best compiled in.
    #[arg(long, value_parser = parse_device)]
    device: Option<ExecutionProvider>,
    /// Fail instead of falling back to another execution provider.
    #[arg(long)]
    strict: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 16 << 20, value_parser = positive)]
    max_body_bytes: usize,
    /// Requests processed at once (more wait).
    #[arg(long, default_value_t = 64, value_parser = positive)]
    max_concurrency: usize,
    /// Most images per model run (1 disables micro-batching).
    #[arg(long, default_value_t = 8, value_parser = positive)]
    max_batch: usize,
    /// How long to wait for more images to join a batch, in milliseconds, 0 to 10000 (0: only
    /// the images queued while the previous batch ran; a window adds its length to a lone
    /// request's latency).
    #[arg(long, default_value = "0", value_parser = batch_window)]
    batch_window_ms: Duration,
    /// `top_k` when the request has none.
    #[arg(long, default_value_t = 5, value_parser = positive)]
    top_k: usize,
    /// ONNX Runtime sessions (each runs one batch at a time).
    #[arg(long, default_value_t = 1, value_parser = positive)]
    sessions: usize,
    /// Also print informational messages (library loaded, provider chosen).
    #[arg(short, long)]
    verbose: bool,
    /// ONNX Runtime intra-op threads per session (default: ONNX Runtime's choice).
    #[arg(long)]
    threads: Option<usize>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    limits: ImageLimitArgs,
    /// Images decoded at once (default: one per core); bounds the memory of decoding.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    decode_concurrency: Option<u32>,
    /// Seconds a client has to send its request headers, then the connection is closed.
    #[arg(long, default_value = "10", value_parser = timeout)]
    header_timeout_s: Duration,
    /// Seconds a client has to send its body once admitted, then 408.
    #[arg(long, default_value = "30", value_parser = timeout)]
    body_timeout_s: Duration,
    /// Seconds a classification may take in all (body, decoding, queue, inference), then 503.
    #[arg(long, default_value = "60", value_parser = timeout)]
    request_timeout_s: Duration,
    /// Seconds requests in flight get to finish on SIGTERM or ctrl-c before they are dropped.
    #[arg(long, default_value = "10", value_parser = timeout)]
    shutdown_grace_s: Duration,
}

/// A count of at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not an integer of at least 1")),
    }
}

/// A duration in milliseconds within `0..=MAX_BATCH_WINDOW`.
fn batch_window(s: &str) -> Result<Duration, String> {
    let max = server::MAX_BATCH_WINDOW.as_secs_f64();
    seconds(s, 1e-3, 0.0, max).map_err(|e| format!("{e} (milliseconds, 0 to {})", max * 1e3))
}

/// A duration in seconds, more than 0 and at most `MAX_TIMEOUT`.
fn timeout(s: &str) -> Result<Duration, String> {
    let max = server::MAX_TIMEOUT.as_secs_f64();
    seconds(s, 1.0, f64::MIN_POSITIVE, max)
        .map_err(|e| format!("{e} (seconds, more than 0 and at most {max})"))
}

/// Parses `s` as a number of `unit` seconds within `[min, max]` seconds (never panics:
/// `Duration::from_secs_f64` is only reached with a finite value in range).
fn seconds(s: &str, unit: f64, min: f64, max: f64) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let secs = v * unit;
    if !(secs.is_finite() && (min..=max).contains(&secs)) {
        return Err(format!("{s} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_device(s: &str) -> Result<ExecutionProvider, String> {
    s.parse()
}

fn main() -> ExitCode {
    let args = Args::parse();
    ahp_runtime::init_stderr_logger(if args.verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    });
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ahp-serve: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = Classifier::builder()
        .strict(args.strict)
        .sessions(args.sessions);
    if let Some(device) = args.device {
        builder = builder.device(device);
    }
    if let Some(threads) = args.threads {
        builder = builder.intra_threads(threads);
    }
    let classifier = Arc::new(builder.commit_from_file(&args.model)?);
    eprintln!(
        "ahp-serve: {} ({} classes) on the {} execution provider ({} session(s))",
        args.model.display(),
        classifier.labels().len(),
        classifier.execution_provider(),
        classifier.num_sessions()
    );
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_concurrency: args.max_concurrency,
        max_batch: args.max_batch,
        batch_window: args.batch_window_ms,
        default_top_k: args.top_k,
        image_limits: args.limits.limits(),
        decode_concurrency: args
            .decode_concurrency
            .map_or(defaults.decode_concurrency, |n| n as usize),
        header_timeout: args.header_timeout_s,
        body_timeout: args.body_timeout_s,
        request_timeout: args.request_timeout_s,
        shutdown_grace: args.shutdown_grace_s,
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid server settings: {e}"))?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = runtime.build().context("cannot start the tokio runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        // The one line on stdout: scripts and tests read the address from it.
        // Signal handlers first: a SIGTERM right after the address is printed must stop the
        // server gracefully, not kill it.
        let shutdown = server::shutdown_signal();
        println!("listening on http://{local}");
        server::serve(listener, classifier, config, shutdown)
            .await
            .context("server error")?;
        Ok::<_, anyhow::Error>(())
    });
    // A decode or model run still going after the grace period does not hold the process.
    // (serve() already gave requests the grace period; this only bounds blocking work left.)
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    eprintln!("ahp-serve: shut down");
    Ok(())
}
