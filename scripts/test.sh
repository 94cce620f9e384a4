#!/usr/bin/env bash
# Builds Release and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-test-data.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLADA2_PYTHON=ON >/dev/null
ninja -C build
ctest --test-dir build --output-on-failure -j2
