#!/usr/bin/env bash
# The main job on the embedded default: zero-shot classification of the committed sample images
# with the committed tiny CLIP checkpoint (Hugging Face format, same loading path as a real
# checkpoint). Installs what it needs (scripts/bootstrap.sh); downloads nothing but crates.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh

cargo build --release --locked -p ahp-cli
model=tests/fixtures/models/clip-tiny-a
./target/release/ahp info --clip "$model"
echo
./target/release/ahp classify --clip "$model" --classes dog,cat,car,tree,house,star tests/fixtures/images
