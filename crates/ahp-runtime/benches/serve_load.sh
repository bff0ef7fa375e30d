#!/usr/bin/env bash
# ahp-serve under a loopback load generator (wrk, `apt-get install wrk`) at steady state, with and
# without micro-batching (not a test).
#
#   crates/ahp-runtime/benches/serve_load.sh MODEL.onnx [IMAGE] [DURATION_S] [CONNECTIONS...]
#
# Builds ahp-serve in release, then for each configuration (max batch 1 = no batching; max batch 8
# with a 0 ms and a 2 ms window) and each connection count (default 1 8 32), runs wrk for
# DURATION_S seconds (default 10, after a 2 s warm-up) POSTing IMAGE (default
# tests/fixtures/images/wide.jpg) to /v1/classify, and prints requests/s, latency percentiles and
# the server's mean batch size. Extra ahp-serve options can be given in AHP_SERVE_ARGS, other
# configurations in AHP_SERVE_CONFIGS (e.g. "1 0;8 0").
set -euo pipefail
cd "$(dirname "$0")/../../.."

model="${1:?usage: serve_load.sh MODEL.onnx [IMAGE] [DURATION_S] [CONNECTIONS...]}"
image="${2:-tests/fixtures/images/wide.jpg}"
duration="${3:-10}"
shift $(($# < 3 ? $# : 3))
conns=("$@")
[ ${#conns[@]} -eq 0 ] && conns=(1 8 32)
command -v wrk >/dev/null || { echo "serve_load.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }

cargo build -q --release -p ahp-runtime --bin ahp-serve
bin="${CARGO_TARGET_DIR:-target}/release/ahp-serve"
tmp="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat >"$tmp/post.lua" <<EOF
local f = assert(io.open("$image", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

pid=""
# "max_batch window_ms" pairs; override with AHP_SERVE_CONFIGS="1 0;8 0".
IFS=';' read -r -a configs <<<"${AHP_SERVE_CONFIGS:-1 0;8 0;8 2}"
for config in "${configs[@]}"; do
  set -- $config
  "$bin" "$model" --addr 127.0.0.1:0 --max-batch "$1" --batch-window-ms "$2" ${AHP_SERVE_ARGS:-} \
    >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 600); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.1; done
  url="$(sed -n 's#^listening on ##p' "$tmp/out")"
  [ -n "$url" ] || { cat "$tmp/err" >&2; exit 1; }
  for c in "${conns[@]}"; do
    wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d 2s --timeout 60s -s "$tmp/post.lua" "$url/v1/classify" >/dev/null
    before="$(curl -s "$url/v1/stats")"
    result="$(wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d "${duration}s" --timeout 60s --latency -s "$tmp/post.lua" "$url/v1/classify")"
    after="$(curl -s "$url/v1/stats")"
    rps="$(echo "$result" | awk '/Requests\/sec/ {print $2}')"
    p50="$(echo "$result" | awk '$1 == "50%" {print $2}')"
    p99="$(echo "$result" | awk '$1 == "99%" {print $2}')"
    non2xx="$(echo "$result" | awk '/Non-2xx/ {print $NF}')"
    sockerr="$(echo "$result" | awk '/Socket errors/ {print $3, $4, $5, $6, $7, $8, $9, $10}')"
    batch="$(python3 -c "import json,sys; b=json.loads(sys.argv[1]); a=json.loads(sys.argv[2]); r=a['runs']-b['runs']; print(round((a['images']-b['images'])/r, 2) if r else 0)" "$before" "$after")"
    printf 'max_batch %s window %s ms, %3s connections: %8s req/s  p50 %8s  p99 %8s  mean batch %5s  non-2xx %s %s\n' \
      "$1" "$2" "$c" "$rps" "$p50" "$p99" "$batch" "${non2xx:-0}" "${sockerr:+socket errors: $sockerr}"
  done
  kill -TERM "$pid"
  wait "$pid" || true
done
