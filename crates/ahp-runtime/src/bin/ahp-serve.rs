//! `ahp-serve`: an HTTP server classifying images with an exported ahp model on ONNX Runtime.
//! See `ahp_runtime::server` for the routes, limits and micro-batching.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Requests processed at once (more wait).
    #[arg(long, default_value_t = 64)]
    max_concurrency: usize,
    /// Most images per model run (1 disables micro-batching).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// How long to wait for more images to join a batch, in milliseconds (0: only the images
    /// queued while the previous batch ran; a window adds its length to a lone request's
    /// latency).
    #[arg(long, default_value_t = 0.0)]
    batch_window_ms: f64,
    /// `top_k` when the request has none.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// ONNX Runtime sessions (each runs one batch at a time).
    #[arg(long, default_value_t = 1)]
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
    if !(args.batch_window_ms.is_finite() && args.batch_window_ms >= 0.0) {
        anyhow::bail!("--batch-window-ms must be >= 0");
    }
    let config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_concurrency: args.max_concurrency,
        max_batch: args.max_batch,
        batch_window: Duration::from_secs_f64(args.batch_window_ms / 1e3),
        default_top_k: args.top_k,
    };

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = runtime.build().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        // The one line on stdout: scripts and tests read the address from it.
        println!("listening on http://{local}");
        server::serve(listener, classifier, config, server::shutdown_signal())
            .await
            .context("server error")?;
        eprintln!("ahp-serve: shut down");
        Ok(())
    })
}
