#!/usr/bin/env bash
# The main job on the embedded default (`ahp demo`): renders synthetic multi-domain data, evaluates
# the embedded CLIP (models/ahp-synth-clip, a Hugging Face checkpoint loaded like any real one)
# zero-shot, purifies it leave-one-domain-out with AHP, folds and exports it to ONNX (validated
# with tract), and classifies the unseen domain with ONNX Runtime. Installs what it needs
# (scripts/bootstrap.sh, ONNX Runtime from its PyPI wheel); downloads nothing but crates and that
# wheel. Extra arguments go to `ahp demo` (see `ahp demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh

ORT_DYLIB_PATH="$(bash scripts/fetch-onnxruntime.sh)"
export ORT_DYLIB_PATH
cargo build --release --locked -p ahp-cli
"${CARGO_TARGET_DIR:-target}/release/ahp" demo "$@"
