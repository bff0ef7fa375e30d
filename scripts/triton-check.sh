#!/usr/bin/env bash
# Loads a repository written by `ahp-export --triton REPO --triton-kind cpu` into a real NVIDIA
# Triton Inference Server, waits for the model to be READY, and compares Triton's logits (KServe
# v2 HTTP/JSON, batches 1, 3 and 5, then 32 single-image requests from 8 threads through the
# dynamic batcher, whose execution count it reports; the top-1 label through the classification
# extension and `label_filename`, whose file must equal the model's `ahp.labels`) with ONNX
# Runtime's on the same exported file.
#
#   TRITONSERVER=/path/to/bin/tritonserver bash scripts/triton-check.sh
#
# Environment:
#   TRITONSERVER     the tritonserver executable (required: without it the check is skipped,
#                    saying so, and exits 0)
#   TRITON_BACKENDS  its backend directory (default: $(dirname $TRITONSERVER)/../backends)
#   AHP_EXPORT       the ahp-export binary (default: target/debug/ahp-export, built if missing)
#   AHP_PYTHON       a python with onnxruntime and numpy (default: python3)
#   TRITON_CLIP      the CLIP checkpoint exported (default: tests/fixtures/models/clip-tiny-b)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TRITONSERVER:-}" ]; then
  echo "triton-check: SKIPPED (not run): TRITONSERVER is not set; point it at a tritonserver executable to load the export in a real Triton"
  exit 0
fi
server=$(command -v "$TRITONSERVER" || true)
if [ -z "$server" ] || [ ! -x "$server" ]; then
  echo "triton-check: error: TRITONSERVER=$TRITONSERVER is not an executable file" >&2
  exit 1
fi
backends=${TRITON_BACKENDS:-$(dirname "$server")/../backends}
if [ ! -d "$backends/onnxruntime" ]; then
  echo "triton-check: error: $backends/onnxruntime: no ONNX Runtime backend there (set TRITON_BACKENDS)" >&2
  exit 1
fi
python=${AHP_PYTHON:-python3}
if [ -n "${AHP_EXPORT:-}" ]; then
  exporter=$AHP_EXPORT
  if [ ! -x "$exporter" ]; then
    echo "triton-check: error: AHP_EXPORT=$exporter is not an executable file" >&2
    exit 1
  fi
else
  cargo build --quiet --locked -p ahp-export --bin ahp-export   # a no-op when up to date
  exporter=target/debug/ahp-export
fi
clip=${TRITON_CLIP:-tests/fixtures/models/clip-tiny-b}

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

name=ahp_clip
"$exporter" --clip "$clip" --classes "dog,cat,car,tree,boat" --template "a photo of a {}." \
  --triton "$work/repo" --triton-name "$name" --triton-kind cpu --triton-max-batch 8 \
  "$work/model.onnx" > "$work/export.log"
echo "triton-check: exported $clip -> $work/repo/$name ($(grep -c . "$work/repo/$name/labels.txt") labels)"

# A free loopback port (another process could take it before Triton binds it: then the server
# exits and the check fails, showing the server's log).
http_port=$("$python" -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$server" --model-repository="$work/repo" --backend-directory="$backends" \
  --http-address=127.0.0.1 --http-port="$http_port" --allow-grpc=false \
  --allow-metrics=false --strict-readiness=true --exit-timeout-secs=5 > "$work/triton.log" 2>&1 &
server_pid=$!

if ! "$python" scripts/triton_check.py --url "http://127.0.0.1:$http_port" --model "$name" \
    --onnx "$work/repo/$name/1/model.onnx" --labels "$work/repo/$name/labels.txt" \
    --server-pid "$server_pid"; then
  echo "triton-check: FAILED; the server's log:" >&2
  tail -n 40 "$work/triton.log" >&2
  exit 1
fi
