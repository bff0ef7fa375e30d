#!/usr/bin/env python3
"""Python onnxruntime counterpart of `benches/ort_throughput.rs` (not a test).

Runs the same ONNX file with the same session options (CPU provider, N intra-op threads, default
graph optimizations) on random pixels at batch 1 and 8 and prints images/s and p50/p99 latency,
so `ahp-runtime run` / this = the overhead of the Rust binding.

    pip install onnxruntime==1.32.0 numpy
    python3 crates/ahp-runtime/benches/ort_python.py MODEL.onnx --threads 2 --iters 50
"""

import argparse
import time

import numpy as np
import onnxruntime as ort


def measure(name, batch, iters, f):
    for _ in range(3):
        f()
    ms = []
    start = time.perf_counter()
    for _ in range(iters):
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3)
    total = time.perf_counter() - start
    ms.sort()
    pct = lambda p: ms[min(len(ms) - 1, round((len(ms) - 1) * p))]
    ips = batch * iters / total
    print(f"{name:<28} batch {batch:>2}: {ips:>9.1f} images/s  p50 {pct(0.5):>8.2f} ms  p99 {pct(0.99):>8.2f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    s = shape[2]
    print(f"model {args.model} ({s}x{s}), onnxruntime {ort.__version__}, {args.threads} intra-op threads, {args.iters} iterations")
    rng = np.random.default_rng(12345)
    for batch in [int(b) for b in args.batches.split(",")]:
        pixels = rng.uniform(-2, 2, size=(batch, 3, s, s)).astype(np.float32)
        measure("python onnxruntime run", batch, args.iters, lambda: sess.run(None, {"pixel_values": pixels}))


if __name__ == "__main__":
    main()
