#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), the dependency-direction check,
# and every test of the workspace. Installs what it needs (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== dependency direction: runtime and wasm crates never pull candle"
for crate in ahp-spec ahp-data ahp-runtime ahp-wasm; do
  if cargo tree -p "$crate" -e normal,build --locked --prefix none | grep -E '^candle-' ; then
    echo "error: $crate depends on candle" >&2
    exit 1
  fi
  echo "$crate: no candle dependency"
done

echo "== python tools for the cross-checks (onnx checker, python onnxruntime, the official Triton client, Prometheus' parser)"
venv="${AHP_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/pyenv}"
if ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy, tritonclient.http, prometheus_client" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check onnx==1.23.2 onnxruntime==1.32.0 numpy \
    'tritonclient[http]==2.73.0' prometheus-client==0.21.1
fi
export AHP_PYTHON="$venv/bin/python"

echo "== ONNX Runtime shared library for ahp-runtime (PyPI wheel, unpacked outside the clone)"
ORT_DYLIB_PATH="$(bash scripts/fetch-onnxruntime.sh)"
export ORT_DYLIB_PATH

echo "== cargo test"
# The test build needs several GiB; a full disk shows up as the linker's bus error, so say it first.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_kb=$(df -Pk "$target_dir" | awk 'NR == 2 {print $4}')
echo "free space for $target_dir: $((free_kb / 1024 / 1024)) GiB"
if [ "${free_kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "warning: less than 3 GiB free for $target_dir; the build may fail with a bus error or 'No space left'" >&2
fi
cargo test --workspace --locked

echo "== robustness: every entry point against hostile inputs (4 GiB ulimit -v, a timeout per case)"
# (the binaries are the ones `cargo test --workspace` just built for the integration tests)
bash tests/robustness/run.sh

echo "== browser: tract compiled to WebAssembly, the demo page in headless Chromium vs ahp-predict (ONNX Runtime)"
bash web/test/run.sh

echo "== Triton: the --triton-kind cpu repository in a real Triton Inference Server vs ONNX Runtime (runs when TRITONSERVER is set)"
bash scripts/triton-check.sh
