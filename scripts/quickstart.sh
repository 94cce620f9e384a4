#!/usr/bin/env bash
# Installs the build dependencies, builds llada2 (Release) and runs one generation on the
# tiny random-weight checkpoint that ships with the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build llada2
echo "== llada2 generate on tests/data/golden/models/tiny-a-f32 (random weights: the ids are noise)"
./build/llada2 generate --model tests/data/golden/models/tiny-a-f32 --input-ids 35,55,4,256,60,52 \
  --gen-length 24 --block-length 8 --num-inference-steps 8 --threshold 0.9 --editing-threshold none \
  --mask-token-id 319 --eos-token-id 311 --output-type seq
