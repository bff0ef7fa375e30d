//! `ahp-serve` / `ahp serve`: an HTTP server classifying images with an exported ahp model on
//! ONNX Runtime. See [`crate::server`] for the routes, limits and micro-batching.

mod values;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{parse_device, ImageLimitArgs};
use crate::server::{self, ServerConfig};
use crate::{Classifier, ExecutionProvider};
use values::{batch_window, positive, timeout};

/// Serve an exported ahp model (ONNX) over HTTP: POST /v1/classify, GET /v1/model,
/// GET /v1/stats, GET /healthz, the KServe v2 protocol (/v2/..., Triton's binary tensors: what
/// tritonclient speaks) and GET /metrics (Prometheus). Stops gracefully on SIGTERM or ctrl-c.
///
/// ONNX Runtime is loaded from ORT_DYLIB_PATH or from the directory scripts/fetch-onnxruntime.sh
/// fills (${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ahp-serve model.onnx --addr 127.0.0.1:8080
  ahp-serve model.onnx --addr 0.0.0.0:8080 --max-batch 16 --batch-window-ms 2 --sessions 2
  curl -F image=@cat.jpg 'http://127.0.0.1:8080/v1/classify?top_k=3'
  curl http://127.0.0.1:8080/v2/models/model   (v2 metadata of model.onnx)
  curl http://127.0.0.1:8080/metrics")]
pub struct ServeArgs {
    /// The exported model (.onnx, with ahp.* metadata).
    model: std::path::PathBuf,
    /// The model's name in the KServe v2 routes (/v2/models/NAME/infer; default: the model
    /// file's stem, as `ahp-export --triton` names the Triton entry).
    #[arg(long)]
    model_name: Option<String>,
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
    /// Let ONNX Runtime's intra-op threads sleep between runs instead of spinning (measured
    /// on 2 cores: spinning, the default, is faster at 1 to 4 concurrent clients, equal at 16).
    #[arg(long)]
    no_ort_spinning: bool,
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

/// Runs `ahp-serve` with these arguments until SIGTERM or ctrl-c: exit code 0 after a graceful
/// shutdown, 2 on an error (printed). Builds its own tokio runtime (`--workers` threads).
pub fn main(args: ServeArgs) -> ExitCode {
    super::init_logger(args.verbose);
    ahp_spec::exit::finish(run(args).map(|()| ExitCode::SUCCESS), 2)
}

/// Loads the model and serves it.
fn run(args: ServeArgs) -> anyhow::Result<()> {
    let classifier = Arc::new(load(&args)?);
    let config = server_config(&args)?;
    let runtime = tokio_runtime(args.workers)?;
    let addr = args.addr;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
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

/// Loads the model as the flags say, and says so on stderr.
fn load(args: &ServeArgs) -> anyhow::Result<Classifier> {
    let mut builder = Classifier::builder()
        .strict(args.strict)
        .sessions(args.sessions);
    if let Some(device) = args.device {
        builder = builder.device(device);
    }
    if let Some(threads) = args.threads {
        builder = builder.intra_threads(threads);
    }
    if args.no_ort_spinning {
        builder = builder.spinning(false);
    }
    let classifier = builder.commit_from_file(&args.model)?;
    eprintln!(
        "ahp-serve: {} ({} classes) on the {} execution provider ({} session(s))",
        args.model.display(),
        classifier.labels().len(),
        classifier.execution_provider(),
        classifier.num_sessions()
    );
    Ok(classifier)
}

/// The server settings the flags give, validated.
fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        model_name: model_name(args)?,
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
    Ok(config)
}

/// `--model-name`, or the model file's stem.
fn model_name(args: &ServeArgs) -> anyhow::Result<String> {
    if let Some(name) = &args.model_name {
        return Ok(name.clone());
    }
    let stem = args
        .model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    server::check_model_name(stem).map_err(|e| {
        anyhow::anyhow!(
            "the model file's stem cannot name the model in the v2 routes ({e}); pass --model-name"
        )
    })?;
    Ok(stem.to_string())
}

/// A multi-threaded tokio runtime with `workers` worker threads (default: one per core).
fn tokio_runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.build().context("cannot start the tokio runtime")
}
