#!/usr/bin/env bash
# The browser test: builds (or reuses) web/pkg, computes the reference predictions with
# `ahp-predict --json` (ONNX Runtime) on the same images and model, then drives real headless
# Chromium (/usr/bin/chromium via playwright-core) over the page served on 127.0.0.1 and compares.
# Artifacts (screenshots, the reference JSON) go to target/web-test/.
#
# Ends with `web: N passed, M failed`; exits non-zero on any failure. Bounded: the node driver
# stops its server and the browser itself and gives up after AHP_WEB_TEST_TIMEOUT_S (120 s).
#
# Environment: AHP_WASM_NO_BUILD=1 (use web/pkg as it is), AHP_PREDICT (path of an ahp-predict
# binary; default: target/debug/ahp-predict as `cargo test --workspace` builds it),
# ORT_DYLIB_PATH (default: scripts/fetch-onnxruntime.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
out="$root/target/web-test"
node_dir="${AHP_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/node}"
images=(web/test/images/painting-triangle.png web/test/images/sketch-star.png tests/fixtures/images/rgb_square.png tests/fixtures/images/palette.png)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

# Chromium (Debian package; playwright never downloads a browser here).
if [ ! -x /usr/bin/chromium ]; then
  echo "web-test: installing chromium with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# The module and the demo model (also installs node tools into $node_dir).
if [ "${AHP_WASM_NO_BUILD:-0}" != 1 ] || [ ! -f web/pkg/ahp_wasm_bg.wasm ]; then
  bash scripts/build-wasm.sh
fi
model=web/pkg/demo.onnx

# Reference predictions: ONNX Runtime through ahp-predict.
mkdir -p "$out"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(bash scripts/fetch-onnxruntime.sh)"
  export ORT_DYLIB_PATH
fi
if [ -n "${AHP_PREDICT:-}" ]; then
  predict=("$AHP_PREDICT")
else
  # Exactly the build of `cargo test --workspace` (scripts/test.sh), which puts ahp-predict in
  # target/debug/ for its CLI tests: a no-op after it, instead of a rebuild with other features.
  cargo test -q --workspace --locked --no-run 2>/dev/null || cargo test --workspace --locked --no-run
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  predict=("$target_dir/debug/ahp-predict")
fi
"${predict[@]}" "$model" "${images[@]}" --json --top-k 1000 > "$out/ahp-predict.json"
echo "web-test: reference from ahp-predict (ONNX Runtime) on $model: $out/ahp-predict.json" >&2

AHP_NODE_DIR="$node_dir" AHP_WEB_TEST_OUT="$out" AHP_WEB_TEST_MODEL="$model" \
  node web/test/browser.mjs "$out/ahp-predict.json" "${images[@]}"
