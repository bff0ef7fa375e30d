#!/usr/bin/env bash
# One AHP training step at ViT-B/16 shape (random weights) on CPU: ahp-train (candle) and the
# PyTorch peer (transformers CLIPModel + the same HA-LoRA, gates, MMD and optimizers, in
# train_step_torch.py), one after the other in one run, same batch and thread count; prints
# both and the ratio.
#
#   crates/ahp-train/benches/train_step.sh [BATCH] [STEPS]
#
# Environment: PYTHON (a python with torch and transformers; default python3), THREADS (default:
# all cores).
set -euo pipefail
cd "$(dirname "$0")/../../.."
batch=${1:-32}
steps=${2:-3}
threads=${THREADS:-$(nproc)}
python=${PYTHON:-python3}

cargo bench --locked -p ahp-train --bench train_step --no-run 2>/dev/null
candle=$(AHP_BENCH_BATCH=$batch AHP_BENCH_STEPS=$steps RAYON_NUM_THREADS=$threads \
    cargo bench --locked -q -p ahp-train --bench train_step 2>/dev/null | grep 'images/s')
torch=$("$python" crates/ahp-train/benches/train_step_torch.py --batch "$batch" --steps "$steps" \
    --threads "$threads" | grep 'images/s')
echo "$candle"
echo "$torch"
c=$(sed -E 's/.* ([0-9.]+) images\/s.*/\1/' <<<"$candle")
t=$(sed -E 's/.* ([0-9.]+) images\/s.*/\1/' <<<"$torch")
awk -v c="$c" -v t="$t" 'BEGIN { printf "candle / pytorch = %.2fx (images/s, higher is faster)\n", c / t }'
