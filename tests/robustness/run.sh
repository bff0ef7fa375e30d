#!/usr/bin/env bash
# The robustness suite (tests/robustness/hostile.py): every entry point (predict, classify, train,
# export, data, serve) against generated hostile inputs under a 4 GiB `ulimit -v` and a timeout
# per case. Uses the debug binaries `cargo test --workspace` builds (AHP_BIN_DIR to use others),
# ONNX Runtime from ORT_DYLIB_PATH and a Python with `onnx` and `numpy` (AHP_PYTHON; test.sh
# installs one). Ends with `robustness: N passed, M failed, K skipped`; exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
bin="${AHP_BIN_DIR:-$target/debug}"
python="${AHP_PYTHON:-python3}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH="$(bash scripts/fetch-onnxruntime.sh)"
  export ORT_DYLIB_PATH
fi
for b in ahp-predict ahp-serve ahp-train ahp-export ahp-data ahp; do
  [ -x "$bin/$b" ] || { echo "robustness: $bin/$b is missing (run cargo test --workspace or cargo build --workspace first)" >&2; exit 1; }
done
exec "$python" tests/robustness/hostile.py --bin "$bin" --out "$target/robustness" --mem-gib "${AHP_ROBUSTNESS_MEM_GIB:-4}"
