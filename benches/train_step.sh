#!/usr/bin/env bash
# Training-step throughput at ViT-B/16 shape, batch 32, CPU: ahp-train (candle) vs. the same
# step in PyTorch (transformers CLIPModel + per-head LoRA and gates), side by side in one run.
# Needs torch + transformers: set AHP_BENCH_PYTHON, or a venv is made in target/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${AHP_BENCH_THREADS:-2}
py=${AHP_BENCH_PYTHON:-}
if [ -z "$py" ]; then
  py=target/bench-venv/bin/python
  if ! "$py" -c "import torch, transformers" 2>/dev/null; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install -q torch transformers
  fi
fi
cargo build --release -p ahp-train --bench train_step >/dev/null 2>&1 || cargo bench -p ahp-train --bench train_step --no-run
ours=$(RAYON_NUM_THREADS=$threads cargo bench -q -p ahp-train --bench train_step 2>/dev/null | tail -1)
theirs=$(AHP_BENCH_THREADS=$threads "$py" benches/train_step_torch.py | tail -1)
echo "$ours"
echo "$theirs"
a=$(echo "$ours" | awk '{print $3}')
b=$(echo "$theirs" | awk '{print $2}')
python3 -c "print(f'ratio candle/torch = {float($a)/float($b):.2f}x images/s')"
