//! Throughput and latency of ahp-runtime on the CPU (not a test).
//!
//! ```sh
//! cargo bench -p ahp-runtime --bench ort_throughput -- MODEL.onnx [--threads 2] [--iters 50] \
//!     [--batches 1,8] [--run-only] [--image IMAGE]
//! python3 crates/ahp-runtime/benches/ort_python.py MODEL.onnx --threads 2 --iters 50
//! ```
//!
//! For batch 1 and 8: `run` on fixed random pixels (model time plus binding overhead), then
//! `classify_batch` on a decoded image (plus ahp-spec preprocessing). Prints images/s and the
//! p50/p99 latency of one call. `ort_python.py` does the same model runs with Python
//! onnxruntime on the same file with the same session options (intra-op threads, default graph
//! optimizations), so the ratio is the binding overhead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use ahp_runtime::{Classifier, ExecutionProvider};

struct Args {
    model: PathBuf,
    threads: usize,
    iters: usize,
    image: Option<PathBuf>,
    batches: Vec<usize>,
    run_only: bool,
}

fn parse_args() -> Args {
    let mut model = None;
    let mut threads = 2;
    let mut iters = 50;
    let mut image = None;
    let mut batches = vec![1, 8];
    let mut run_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {}
            "--threads" => threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--iters" => iters = it.next().and_then(|v| v.parse().ok()).expect("--iters N"),
            "--image" => image = it.next().map(PathBuf::from),
            "--batches" => {
                batches = it
                    .next()
                    .map(|v| v.split(',').filter_map(|b| b.parse().ok()).collect())
                    .expect("--batches 1,8")
            }
            "--run-only" => run_only = true,
            other if !other.starts_with("--") => model = Some(PathBuf::from(other)),
            other => panic!("unknown argument {other}"),
        }
    }
    let model = model
        .or_else(|| std::env::var_os("AHP_BENCH_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/onnx/clip-tiny-a.onnx")
        });
    Args {
        model,
        threads,
        iters,
        image,
        batches,
        run_only,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Times `iters` calls of `f` (after 3 warm-up calls); prints and returns (images/s, p50, p99).
fn measure(name: &str, batch: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..3 {
        f();
    }
    let mut ms = Vec::with_capacity(iters);
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        f();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64();
    ms.sort_by(f64::total_cmp);
    let ips = (batch * iters) as f64 / total;
    let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
    println!(
        "{name:<28} batch {batch:>2}: {ips:>9.1} images/s  p50 {p50:>8.2} ms  p99 {p99:>8.2} ms"
    );
    (ips, p50, p99)
}

fn main() {
    let args = parse_args();
    let c = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .intra_threads(args.threads)
        .commit_from_file(&args.model)
        .unwrap_or_else(|e| panic!("{e}"));
    let (h, w) = c.image_size();
    println!(
        "model {} ({}x{}, {} classes), {} EP, {} intra-op threads, {} iterations",
        args.model.display(),
        h,
        w,
        c.labels().len(),
        c.execution_provider(),
        args.threads,
        args.iters
    );
    let image_path = args.image.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images/wide.jpg")
    });
    let image = ahp_runtime::preprocess::load_image(&image_path).expect("image");
    for &batch in &args.batches {
        let mut state = 12345u64;
        let pixels: Vec<f32> = (0..batch * c.pixels_per_image())
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        measure("ahp-runtime run", batch, args.iters, || {
            c.run(&pixels, batch).expect("run");
        });
        if args.run_only {
            continue;
        }
        let images = vec![image.clone(); batch];
        measure("ahp-runtime classify_batch", batch, args.iters, || {
            c.classify_batch(&images, 5).expect("classify");
        });
    }
}
