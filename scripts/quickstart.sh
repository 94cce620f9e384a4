#!/usr/bin/env bash
# Installs the build dependencies, builds llada2 (Release) and asks the bundled demo model
# (models/llada2-demo, trained from scratch by train/) a question.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLADA2_PYTHON=ON >/dev/null
ninja -C build llada2
echo
echo "== ./build/llada2 generate -p 'What is 4821 + 739?'"
./build/llada2 generate -p "What is 4821 + 739?"
cat <<'TIP'

Watch a sudoku fill in out of order (masked cells ░ are committed by confidence, not left to right):
  ./build/llada2 generate --visual -p $'Solve this 4x4 sudoku (0 marks an empty cell):\n1000\n0003\n0200\n0040'
Chat with it:                 ./build/llada2 chat
Measure it:                   ./build/llada2 eval --tasks models/llada2-demo/eval.jsonl --limit 50
TIP
