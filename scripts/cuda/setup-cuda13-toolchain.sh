#!/usr/bin/env bash
# Builds a CUDA 13.0 toolchain (nvcc + headers + link-time libraries) from PyPI wheels, outside
# the repo, for `cargo build --features cuda` on a machine with no GPU and no CUDA install.
# 13.0 (not newer): the device's driver 580 is CUDA 13.0 and cannot JIT newer PTX; its PyTorch
# (cu130) provides libcublas.so.13 / libcurand.so.10 / libcudart.so.13 / libnvrtc.so.13 at run time.
set -euo pipefail
ROOT=${1:-/root/.cache/ahp/cuda13}
mkdir -p "$ROOT/wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$ROOT/wheels" \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
cd "$ROOT"
for w in wheels/*.whl; do unzip -q -o "$w"; done
R=$ROOT/nvidia/cu13
chmod +x "$R"/bin/* "$R"/nvvm/bin/*
# nvcc.profile looks for $TOP/targets/x86_64-linux/{include,lib}; cudarc/cudaforge look in lib64.
mkdir -p "$R/targets/x86_64-linux"
ln -sfn ../../include "$R/targets/x86_64-linux/include"
ln -sfn ../../lib "$R/targets/x86_64-linux/lib"
ln -sfn lib "$R/lib64"
# Unversioned names for the linker (cudarc `dynamic-linking`, candle-kernels links cudart).
for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "$R/lib/lib$l.so"; done
ln -sf libcurand.so.10 "$R/lib/libcurand.so"
# libcuda comes with the driver, not with any wheel: a stub with soname libcuda.so.1 that defines
# every cu* symbol cudarc declares (never called; the real driver library is used at run time).
MOD=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 | head -n 1)/src/driver/sys/mod.rs
mkdir -p "$R/lib/stubs"
grep -oP '^\s+fn \Kcu\w+(?=\()' "$MOD" | sort -u | awk '{print "int "$1"(void){return 999;}"}' > "$ROOT/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib/stubs/libcuda.so" "$ROOT/libcuda_stub.c"
"$R/bin/nvcc" --version | tail -n 2
echo "CUDA_HOME=$R"
