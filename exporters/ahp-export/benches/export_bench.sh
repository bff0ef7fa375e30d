#!/usr/bin/env bash
# Export benchmark (not a test): a ViT-B/16-shaped CLIP (random weights) exported by ahp-export
# (wall time and peak RSS) and by torch.onnx.export (torch_export_peer.py), then ONNX Runtime CPU
# throughput of both files with the same session options, batch 1 and 8, in one run.
#
#   exporters/ahp-export/benches/export_bench.sh [WORK_DIR]
#
# Environment: PYTHON (a python with torch, transformers, onnxruntime, numpy, safetensors;
# default python3), THREADS (ONNX Runtime intra-op threads, default 2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
work=${1:-/tmp/ahp-export-bench}
python=${PYTHON:-python3}
threads=${THREADS:-2}
classes=dog,cat,car,tree,house,star,boat
mkdir -p "$work"

[ -f "$work/clip-vit-b16/model.safetensors" ] ||
    "$python" crates/ahp-runtime/benches/make_vit_b16_checkpoint.py "$work/clip-vit-b16" >/dev/null
cargo build --locked --release -q -p ahp-export
/usr/bin/time -f 'ahp-export: %e s wall, peak RSS %M KB' \
    ./target/release/ahp-export --clip "$work/clip-vit-b16" --classes "$classes" \
    "$work/ahp.onnx" >/dev/null
"$python" exporters/ahp-export/benches/torch_export_peer.py "$work/clip-vit-b16" \
    --classes "$classes" --ours "$work/ahp.onnx" --out "$work/torch.onnx" --threads "$threads"
ls -l "$work/ahp.onnx" "$work/torch.onnx"
