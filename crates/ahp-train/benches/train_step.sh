#!/usr/bin/env bash
# One AHP training step at ViT-B/16 shape (random weights) on CPU: ahp-train (candle) and the
# PyTorch peer (transformers CLIPModel + the same HA-LoRA, gates, MMD and optimizers, in
# train_step_torch.py), alternately in one run (ROUNDS rounds, each process timing STEPS steps
# after a warmup), same batch and thread count; prints every measurement, the medians and their
# ratio.
#
#   crates/ahp-train/benches/train_step.sh [BATCH] [STEPS]
#
# Environment: PYTHON (a python with torch and transformers; default python3), THREADS (default:
# all cores), ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../../.."
batch=${1:-32}
steps=${2:-3}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-3}
python=${PYTHON:-python3}

cargo bench --locked -p ahp-train --bench train_step --no-run 2>/dev/null
rate() { sed -E 's/.* ([0-9.]+) images\/s.*/\1/' <<<"$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
c_rates=()
t_rates=()
for round in $(seq "$rounds"); do
    candle=$(AHP_BENCH_BATCH=$batch AHP_BENCH_STEPS=$steps RAYON_NUM_THREADS=$threads \
        cargo bench --locked -q -p ahp-train --bench train_step 2>/dev/null | grep 'images/s')
    echo "round $round: $candle"
    c_rates+=("$(rate "$candle")")
    torch=$("$python" crates/ahp-train/benches/train_step_torch.py --batch "$batch" \
        --steps "$steps" --threads "$threads" | grep 'images/s')
    echo "round $round: $torch"
    t_rates+=("$(rate "$torch")")
done
c=$(printf '%s\n' "${c_rates[@]}" | median)
t=$(printf '%s\n' "${t_rates[@]}" | median)
echo "median over $rounds rounds: candle $c images/s, pytorch $t images/s (batch $batch, $threads threads)"
awk -v c="$c" -v t="$t" 'BEGIN { printf "candle / pytorch = %.2fx (images/s, higher is faster)\n", c / t }'
