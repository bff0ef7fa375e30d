#!/usr/bin/env bash
# Benchmark (not a test): per-image latency of tract-wasm vs. onnxruntime-web (wasm backend, SIMD)
# on the same .onnx files in the same headless Chromium session. Prints one table per model.
#
#   bash web/bench/run.sh [--runs N] [--warmup N] [--pkg ../pkg-nosimd] [model.onnx...]
#
# Default model: web/pkg/demo.onnx. Installs onnxruntime-web (web/bench/package-lock.json) into
# ${AHP_BENCH_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/node-bench}; builds web/pkg if absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench_dir="${AHP_BENCH_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/node-bench}"
[ -f web/pkg/ahp_wasm_bg.wasm ] || bash scripts/build-wasm.sh
lock_sum="$(cat web/bench/package.json web/bench/package-lock.json | sha256sum | cut -c1-16)"
if [ "$(cat "$bench_dir/.stamp" 2>/dev/null)" != "$lock_sum" ]; then
  echo "bench: installing onnxruntime-web (npm ci) into $bench_dir" >&2
  mkdir -p "$bench_dir"
  cp web/bench/package.json web/bench/package-lock.json "$bench_dir/"
  (cd "$bench_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" > "$bench_dir/.stamp"
fi
AHP_BENCH_NODE_DIR="$bench_dir" node web/bench/run.mjs "$@"
