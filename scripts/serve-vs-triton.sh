#!/usr/bin/env bash
# Throughput of ahp-serve against a real Triton Inference Server (not a test): the same exported
# model, the same ONNX Runtime threads (one instance / session each), dynamic batching on both
# (up to MAX_BATCH images, no added queue delay), the same KServe v2 load generator
# (crates/ahp-runtime/benches/v2_load.rs: binary tensors, closed loop), alternating rounds,
# medians. Prints every run and the table the README shows.
#
#   TRITONSERVER=/path/to/tritonserver bash scripts/serve-vs-triton.sh
#
# Environment: TRITONSERVER (required), TRITON_BACKENDS (default: the server's ../backends),
# CLIP (default models/ahp-emoji-clip), THREADS (ONNX Runtime intra-op threads, default 2),
# MAX_BATCH (8), CONCURRENCY (1,4,16), ROUNDS (5), RUN_SECONDS (5 per run), AHP_SERVE_ARGS
# (more ahp-serve flags, e.g. "--workers 1").
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TRITONSERVER:?set TRITONSERVER to a tritonserver executable that has the onnxruntime backend}"
server=$(command -v "$TRITONSERVER" || true)
[ -n "$server" ] && [ -x "$server" ] || { echo "serve-vs-triton: TRITONSERVER=$TRITONSERVER is not executable" >&2; exit 1; }
backends=${TRITON_BACKENDS:-$(dirname "$server")/../backends}
[ -d "$backends/onnxruntime" ] || { echo "serve-vs-triton: $backends/onnxruntime: no ONNX Runtime backend (set TRITON_BACKENDS)" >&2; exit 1; }
clip=${CLIP:-models/ahp-emoji-clip}
threads=${THREADS:-2}
max_batch=${MAX_BATCH:-8}
concurrency=${CONCURRENCY:-1,4,16}
rounds=${ROUNDS:-5}
seconds=${RUN_SECONDS:-5}
if [ -z "${ORT_DYLIB_PATH:-}" ]; then ORT_DYLIB_PATH=$(bash scripts/fetch-onnxruntime.sh); export ORT_DYLIB_PATH; fi

cargo build --quiet --release --locked -p ahp-export --bin ahp-export -p ahp-runtime --bin ahp-serve
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

name=ahp_bench
"$bin/ahp-export" --clip "$clip" --classes "dog,cat,car,tree,boat,pizza,rocket,house,star,apple" \
  --template "an emoji of a {}." --triton "$work/repo" --triton-name "$name" --triton-kind cpu \
  --triton-threads "$threads" --triton-max-batch "$max_batch" --triton-queue-delay-us 0 \
  "$work/$name.onnx" > "$work/export.log"
size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vision_config"]["image_size"])' "$clip/config.json")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

triton_port=$(port)
"$server" --model-repository="$work/repo" --backend-directory="$backends" \
  --http-address=127.0.0.1 --http-port="$triton_port" --allow-grpc=false --allow-metrics=false \
  --strict-readiness=true --exit-timeout-secs=5 > "$work/triton.log" 2>&1 &
pids+=($!)
"$bin/ahp-serve" "$work/$name.onnx" --model-name "$name" --addr 127.0.0.1:0 --threads "$threads" \
  --sessions 1 --max-batch "$max_batch" --batch-window-ms 0 ${AHP_SERVE_ARGS:-} > "$work/serve.out" 2> "$work/serve.log" &
pids+=($!)

wait_ready() { # URL LOG
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "$1/v2/health/ready"; then return 0; fi
    sleep 0.1
  done
  echo "serve-vs-triton: $1 not ready after 30 s; its log:" >&2; tail -n 30 "$2" >&2; exit 1
}
for _ in $(seq 1 300); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
ahp_url=$(sed -n 's#^listening on ##p' "$work/serve.out")
[ -n "$ahp_url" ] || { cat "$work/serve.log" >&2; exit 1; }
wait_ready "$ahp_url" "$work/serve.log"
wait_ready "http://127.0.0.1:$triton_port" "$work/triton.log"
echo "serve-vs-triton: $clip (${size}x${size}), $threads ONNX Runtime thread(s) per server, max batch $max_batch, $(nproc) cores"
echo "  ahp-serve $ahp_url, Triton $("$server" --version 2>/dev/null | head -n1 || echo '(version unknown)') http://127.0.0.1:$triton_port"

cargo bench --quiet --locked -p ahp-runtime --bench v2_load -- \
  --target "ahp-serve=$ahp_url/v2/models/$name" \
  --target "triton=http://127.0.0.1:$triton_port/v2/models/$name" \
  --shape "3,$size,$size" --concurrency "$concurrency" --rounds "$rounds" --seconds "$seconds"
