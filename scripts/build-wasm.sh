#!/usr/bin/env bash
# Builds crates/ahp-wasm for the browser into web/pkg/ (generated, git-ignored):
#   ahp_wasm.js, ahp_wasm_bg.wasm (+ .d.ts)  wasm-bindgen's ES module and the optimized module
#   demo.onnx, demo.json                      the default model of the page (DEMO_MODEL below)
#   build.json                                sizes and flags of this build
#
# Reproducible on a fresh Debian 12 machine; installs only what is missing (see
# docs/RECIPES.md, "WASM for tract in the browser"):
#   apt:   rustc-web cargo-web rust-web-src rust-web-llvm lld-22 (Debian's Rust 1.96 with its std
#          source: std is rebuilt for wasm32 with -Z build-std; rustup's toolchain is not used
#          here), nodejs/npm when absent
#   cargo: wasm-bindgen-cli, exactly the version of the `wasm-bindgen` crate in Cargo.lock
#   npm:   web/tools/package-lock.json (binaryen's wasm-opt, playwright-core) into
#          ${AHP_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/node}, outside the repository
# Cached steps are skipped: a warm run with nothing changed takes seconds.
#
# Environment:
#   AHP_DEMO_MODEL   ONNX model copied to web/pkg/demo.onnx (default: the embedded model purified
#                    for the painting domain by `ahp demo`, made here into target/demo-model/ on
#                    first use and again when models/ahp-synth-clip changes)
#   AHP_WASM_SIMD    1 (default) builds with -C target-feature=+simd128; 0 without (for the
#                    measurement in web/README.md)
#   AHP_WASM_OUT     output directory (default web/pkg; web/pkg/nosimd without SIMD)
#   AHP_WASM_TARGET  cargo target directory (default target/wasm, or target/wasm-nosimd); keeps
#                    Debian's rustc away from rustup's build artifacts
#   AHP_WASM_SKIP_OPT=1  skip wasm-opt (faster iterations)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

DEMO_MODEL="${AHP_DEMO_MODEL:-target/demo-model/ahp-synth-clip-painting.onnx}"
simd="${AHP_WASM_SIMD:-1}"
if [ "$simd" = 1 ]; then
  out="${AHP_WASM_OUT:-web/pkg}"
  target_dir="${AHP_WASM_TARGET:-target/wasm}"
  rustflags="-C target-feature=+simd128"
else
  out="${AHP_WASM_OUT:-web/pkg/nosimd}"
  target_dir="${AHP_WASM_TARGET:-target/wasm-nosimd}"
  rustflags=""
fi
node_dir="${AHP_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/node}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
t_start=$SECONDS

log() { echo "build-wasm: $*" >&2; }
human() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.2f MiB", b / 1048576; else printf "%.1f KiB", b / 1024 }'; }

# --- 1. Debian's Rust for wasm32 (compiler + std source of the same version), node -------------
need_apt=()
for pkg in rustc-web cargo-web rust-web-src rust-web-llvm lld-22; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v gzip >/dev/null 2>&1 || need_apt+=(gzip)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
std_src=/usr/lib/rustlib/src/rust/library
[ -d "$std_src" ] || { log "error: $std_src missing (package rust-web-src)"; exit 1; }

# --- 2. wasm-bindgen-cli, the exact version of the wasm-bindgen crate --------------------------
wb_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$wb_version" ] || { log "error: no wasm-bindgen in Cargo.lock"; exit 1; }
wasm_bindgen="$cargo_home/bin/wasm-bindgen"
if [ "$("$wasm_bindgen" --version 2>/dev/null)" != "wasm-bindgen $wb_version" ]; then
  log "installing wasm-bindgen-cli $wb_version with cargo install (a few minutes, once)"
  # Not --locked: the CLI's own lockfile wants a crate version the registry lacks (RECIPES.md).
  # Built with the regular (rustup) toolchain.
  cargo install -q wasm-bindgen-cli --version "$wb_version" --force
fi

# --- 3. npm tools (wasm-opt, playwright-core), pinned by web/tools/package-lock.json -----------
lock_sum="$(cat web/tools/package.json web/tools/package-lock.json | sha256sum | cut -c1-16)"
if [ "$(cat "$node_dir/.stamp" 2>/dev/null)" != "$lock_sum" ]; then
  log "installing web/tools (npm ci) into $node_dir"
  mkdir -p "$node_dir"
  cp web/tools/package.json web/tools/package-lock.json "$node_dir/"
  (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" > "$node_dir/.stamp"
fi
wasm_opt="$node_dir/node_modules/.bin/wasm-opt"

# --- 4. cargo build: Debian's rustc, std rebuilt for wasm32 -----------------------------------
log "cargo (Debian rustc $(/usr/bin/rustc --version | cut -d' ' -f2), simd128=$([ "$simd" = 1 ] && echo on || echo off)) into $target_dir"
t0=$SECONDS
set +e
env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER -u CARGO_BUILD_RUSTC_WRAPPER \
  PATH="/usr/lib/llvm-22/bin:/usr/bin:/bin" \
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO=/usr/bin/cargo RUSTC_BOOTSTRAP=1 \
  CARGO_HOME="$cargo_home" CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="$rustflags" \
  /usr/bin/cargo rustc --locked -p ahp-wasm --lib --crate-type cdylib \
    --profile wasm-release --target wasm32-unknown-unknown -Z build-std=std,panic_abort \
    2>&1 | grep -vE '^\s+(Compiling|Fresh|Checking)' >&2
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { log "error: cargo failed ($status)"; exit "$status"; }
t_cargo=$((SECONDS - t0))
raw="$target_dir/wasm32-unknown-unknown/wasm-release/ahp_wasm.wasm"
[ -f "$raw" ] || { log "error: $raw not built"; exit 1; }

# --- 5. wasm-bindgen + wasm-opt (skipped when the module and the tools are unchanged) ---------
mkdir -p "$out"
stamp="$(cat "$raw" | sha256sum | cut -c1-16) $wb_version $lock_sum ${AHP_WASM_SKIP_OPT:-0}"
final="$out/ahp_wasm_bg.wasm"
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$final" ] || [ ! -f "$out/ahp_wasm.js" ]; then
  rm -f "$out/.stamp"
  "$wasm_bindgen" --target web --out-dir "$out" "$raw"
  bindgen_bytes=$(stat -c %s "$final")
  if [ "${AHP_WASM_SKIP_OPT:-0}" != 1 ]; then
    t0=$SECONDS
    # Features rustc 1.96 emits for wasm32-unknown-unknown, plus SIMD.
    "$wasm_opt" -Oz --strip-debug --strip-producers \
      --enable-simd --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
      --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
      "$final" -o "$final.opt"
    mv "$final.opt" "$final"
    log "wasm-opt -Oz: $((SECONDS - t0)) s"
  fi
  echo "$bindgen_bytes" > "$out/.bindgen-bytes"
  echo "$stamp" > "$out/.stamp"
fi
bindgen_bytes="$(cat "$out/.bindgen-bytes")"

# --- 6. demo model ---------------------------------------------------------------------------
if [ -z "${AHP_DEMO_MODEL:-}" ]; then
  # The default: `ahp demo`'s exported model (the embedded CLIP purified for the unseen painting
  # domain), rebuilt when the embedded checkpoint changes. The binary is the one of
  # `cargo test --workspace` (scripts/test.sh), so after the tests this build is a no-op.
  want="$(sha256sum models/ahp-synth-clip/model.safetensors | cut -c1-64)"
  if [ ! -f "$DEMO_MODEL" ] || [ "$(cat target/demo-model/.base-sha256 2>/dev/null)" != "$want" ]; then
    log "making the demo model with ahp demo (about 2 minutes)"
    cargo test -q --workspace --locked --no-run 2>/dev/null || cargo test --workspace --locked --no-run
    [ -n "${ORT_DYLIB_PATH:-}" ] || { ORT_DYLIB_PATH="$(bash scripts/fetch-onnxruntime.sh)"; export ORT_DYLIB_PATH; }
    rm -rf target/demo-model
    mkdir -p target
    if ! "${CARGO_TARGET_DIR:-target}/debug/ahp" demo --data synthetic --quiet --out target/demo-model > target/demo-model.log 2>&1; then
      cat target/demo-model.log >&2
      log "error: ahp demo failed (log above)"
      exit 1
    fi
    cp target/demo-model/model.onnx "$DEMO_MODEL"
    echo "$want" > target/demo-model/.base-sha256
  fi
fi
[ -f "$DEMO_MODEL" ] || { log "error: demo model $DEMO_MODEL not found"; exit 1; }
cp "$DEMO_MODEL" "$out/demo.onnx"
printf '{"file": "demo.onnx", "name": "%s", "source": "%s"}\n' \
  "$(basename "$DEMO_MODEL")" "$DEMO_MODEL" > "$out/demo.json"

# --- 7. sizes --------------------------------------------------------------------------------
raw_bytes=$(stat -c %s "$raw")
opt_bytes=$(stat -c %s "$final")
gz_bytes=$(gzip -9 -c "$final" | wc -c)
js_bytes=$(stat -c %s "$out/ahp_wasm.js")
cat > "$out/build.json" <<EOF
{"simd128": $([ "$simd" = 1 ] && echo true || echo false), "rustc": "$(/usr/bin/rustc --version)", "wasm_bindgen": "$wb_version",
 "bytes": {"cargo": $raw_bytes, "wasm_bindgen": $bindgen_bytes, "wasm_opt": $opt_bytes, "gzip": $gz_bytes, "js": $js_bytes},
 "demo_model": "$DEMO_MODEL"}
EOF
echo "wasm module (simd128 $([ "$simd" = 1 ] && echo on || echo off)):"
printf '  %-22s %10s  %s\n' "cargo (wasm-release)" "$(human "$raw_bytes")" "$raw"
printf '  %-22s %10s\n' "wasm-bindgen" "$(human "$bindgen_bytes")"
printf '  %-22s %10s  %s\n' "wasm-opt -Oz" "$(human "$opt_bytes")" "$final"
printf '  %-22s %10s\n' "gzip -9" "$(human "$gz_bytes")"
echo "demo model: $DEMO_MODEL -> $out/demo.onnx ($(human "$(stat -c %s "$out/demo.onnx")"))"
echo "built $out in $((SECONDS - t_start)) s (cargo $t_cargo s)"
