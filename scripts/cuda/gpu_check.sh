#!/usr/bin/env bash
# One-call GPU check of ahp-train's CUDA build, run from the repository root on the device machine:
#   bash scripts/cuda/gpu_check.sh     (with the carried folder target/gpu-carry)
# Needs, in target/gpu-carry/: ahp-train.xz (built with --features cuda), data-tiny/ and data-vit/
# (ahp-data synth). Writes everything to $OUT/gpu_check.log (one file: the device tool returns
# at most 8). Env: SKIP_CPU=1 skips the CPU comparisons, SKIP_VIT=1 the ViT-B/16 part.
set -u
C=${AHP_GPU_CARRY:-target/gpu-carry}
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
W=/tmp/ahp-gpu-check
rm -rf "$W"; mkdir -p "$W"
# The stripped binary travels xz-compressed (59 MB -> 8 MB; the tree limit is 64 MiB).
T=${AHP_TRAIN:-$W/ahp-train}
if [ ! -x "$T" ]; then
  { xz -dc $C/ahp-train.xz 2>/dev/null || python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open('$C/ahp-train.xz').read())"; } > "$T"
  chmod +x "$T"
fi

# One training run; prints the wall time, the summary line, the report's accuracy table and the
# metrics lines. Args: NAME LIMIT_S ahp-train-args...
train() {
  local name=$1 limit=$2; shift 2
  echo "=== $name: ahp-train $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$T" "$@" --out "$W/$name" --quiet > "$W/$name.stdout" 2> "$W/$name.stderr"
  rc=$?
  t1=$(date +%s.%N)
  echo "--- $name: exit $rc, wall $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
  grep -h "run directory" "$W/$name.stdout" || true
  tail -n 30 "$W/$name.stderr"
  [ -f "$W/$name/metrics.jsonl" ] && { echo "--- $name metrics.jsonl (gates cut)"; sed -E 's/,"gates":.*$/}/' "$W/$name/metrics.jsonl"; }
  grep -E "^\|" "$W/$name.stdout" | head -n 30 || true
}

main() {
  echo "=== host"; date -u; uname -r; nproc
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,memory.used --format=csv
  nvidia-smi | sed -n 1,12p

  echo "=== CUDA libraries"
  local dirs="" sp f lib
  sp=$(python3 -c "import nvidia; print(' '.join(nvidia.__path__))" 2>/dev/null)
  echo "python nvidia packages: $sp"
  for lib in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    f=""
    [ "$lib" = libcuda.so.1 ] && f=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
    [ -z "$f" ] && f=$(find $sp /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia /usr/lib/x86_64-linux-gnu -name "$lib" 2>/dev/null | head -n 1)
    [ -z "$f" ] && f=$(find /opt /usr/local /usr/lib -name "$lib" 2>/dev/null | head -n 1)
    echo "$lib -> ${f:-NOT FOUND}"
    [ -n "$f" ] && case ":$dirs:" in *":$(dirname "$f"):"*) ;; *) dirs="$dirs:$(dirname "$f")";; esac
  done
  dirs=${dirs#:}
  export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+${dirs:+:}$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$T" | grep -E "cuda|cublas|curand|nvrtc|not found"
  export RUST_BACKTRACE=1

  # Tiny fixture (tracked): CUDA vs CPU, same seed, same data.
  local tiny=(--clip tests/fixtures/models/clip-tiny-a --data $C/data-tiny --target-domain sketch
              --steps 30 --batch-size 24 --eval-every 30 --seed 0)
  train tiny-cuda 60 "${tiny[@]}" --device cuda
  [ "${SKIP_CPU:-0}" = 1 ] || train tiny-cpu 60 "${tiny[@]}" --device cpu
  nvidia-smi --query-gpu=memory.used --format=csv

  [ "${SKIP_VIT:-0}" = 1 ] && return
  echo "=== ViT-B/16-shaped random checkpoint"
  python3 crates/ahp-runtime/benches/make_vit_b16_checkpoint.py "$W/vitb16" || return
  # Per-step time = difference of two runs' training seconds (both include the same fixed cost:
  # one evaluation at the last step). The summary's images/s = images / training seconds.
  # vit-cuda-2 and vit-cpu-2 have the same settings: their metrics lines should agree.
  local vit=(--clip "$W/vitb16" --data $C/data-vit --target-domain sketch --batch-size 32 --seed 0)
  train vit-cuda-2 90 "${vit[@]}" --steps 2 --eval-every 2 --device cuda
  train vit-cuda-22 120 "${vit[@]}" --steps 22 --eval-every 22 --device cuda
  nvidia-smi --query-gpu=memory.used --format=csv
  if [ "${SKIP_CPU:-0}" != 1 ]; then
    train vit-cpu-1 100 "${vit[@]}" --steps 1 --eval-every 1 --device cpu
    train vit-cpu-2 100 "${vit[@]}" --steps 2 --eval-every 2 --device cpu
  fi
  echo "=== per-step throughput from the differences"
  python3 - "$W" <<'PY'
import re, sys, os
w = sys.argv[1]
def secs(name, steps):
    p = os.path.join(w, name + ".stdout")
    if not os.path.exists(p): return None
    m = re.search(r"([0-9.]+) train images/s", open(p).read())
    return steps * 32 / float(m.group(1)) if m else None
for dev, (a, b) in {"cuda": (2, 22), "cpu": (1, 2)}.items():
    s1, s2 = secs(f"vit-{dev}-{a}", a), secs(f"vit-{dev}-{b}", b)
    if s1 and s2:
        dt = (s2 - s1) / (b - a)
        print(f"{dev}: ViT-B/16 batch 32: {dt*1e3:.0f} ms/step, {32/dt:.1f} images/s (steps {a} vs {b}: {s1:.2f} s vs {s2:.2f} s of training)")
    else:
        print(f"{dev}: missing runs")
PY
}

main 2>&1 | tee "$OUT/gpu_check.log"
