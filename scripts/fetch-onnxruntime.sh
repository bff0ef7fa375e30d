#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library that ahp-runtime loads at run time (the `ort` crate is
# built with `load-dynamic`, so nothing is downloaded at build time and no CDN is involved).
#
# The library comes from the CPU wheel of the PyPI package `onnxruntime`, downloaded with pip and
# unpacked (nothing is installed into any Python environment). Idempotent: when the library is
# already there, it only prints its path.
#
# Where it goes (outside the repository):
#   ${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}
# ahp-runtime looks there by default; `ORT_DYLIB_PATH=/path/to/libonnxruntime.so.X` overrides it.
#
# Usage: scripts/fetch-onnxruntime.sh            # prints the library path on stdout
#        export ORT_DYLIB_PATH="$(scripts/fetch-onnxruntime.sh)"
# Environment: AHP_ORT_VERSION (default 1.32.0), AHP_ORT_DIR, PYTHON (default python3).
set -euo pipefail

version="${AHP_ORT_VERSION:-1.32.0}"
dir="${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}"
lib="$dir/libonnxruntime.so.$version"
python="${PYTHON:-python3}"

if [ -f "$lib" ] && [ -f "$dir/libonnxruntime_providers_shared.so" ]; then
  echo "fetch-onnxruntime: ONNX Runtime $version already in $dir" >&2
  echo "$lib"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64 | Linux-aarch64) ;;
  *)
    echo "fetch-onnxruntime: only Linux x86_64/aarch64 is scripted; on $(uname -s)-$(uname -m)" \
      "get libonnxruntime from https://github.com/microsoft/onnxruntime/releases and set ORT_DYLIB_PATH" >&2
    exit 1
    ;;
esac

if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "fetch-onnxruntime: '$python -m pip' is not available; install pip (e.g. apt-get install python3-pip)" >&2
  exit 1
fi

mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-onnxruntime: downloading the onnxruntime==$version wheel from PyPI" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  "onnxruntime==$version" -d "$tmp/wheel" >&2

wheel="$(ls "$tmp"/wheel/onnxruntime-*.whl 2>/dev/null | head -n 1)"
if [ -z "$wheel" ]; then
  echo "fetch-onnxruntime: pip did not produce an onnxruntime wheel in $tmp/wheel" >&2
  exit 1
fi

# A wheel is a zip file; python's zipfile avoids depending on `unzip`.
"$python" - "$wheel" "$tmp/lib" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
            n += 1
if n == 0:
    sys.exit(f"no onnxruntime/capi/libonnxruntime* in {wheel}")
PY

if [ ! -f "$tmp/lib/libonnxruntime.so.$version" ]; then
  echo "fetch-onnxruntime: the wheel has no libonnxruntime.so.$version:" "$(ls "$tmp/lib")" >&2
  exit 1
fi
# Move the providers' helper first and the main library last, so a concurrent run never sees the
# main library without its neighbour (the check at the top tests both).
for f in "$tmp"/lib/*; do
  [ "$(basename "$f")" = "libonnxruntime.so.$version" ] && continue
  mv -f "$f" "$dir/"
done
mv -f "$tmp/lib/libonnxruntime.so.$version" "$lib"
ln -sfn "libonnxruntime.so.$version" "$dir/libonnxruntime.so"

echo "fetch-onnxruntime: ONNX Runtime $version in $dir" >&2
echo "$lib"
