#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), the dependency-direction check,
# and every test of the workspace. Installs what it needs (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== dependency direction: runtime and wasm crates never pull candle"
for crate in ahp-spec ahp-data ahp-runtime ahp-wasm; do
  if cargo tree -p "$crate" -e normal,build --locked --prefix none | grep -E '^candle-' ; then
    echo "error: $crate depends on candle" >&2
    exit 1
  fi
  echo "$crate: no candle dependency"
done

echo "== cargo test"
cargo test --workspace --locked
