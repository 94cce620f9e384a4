#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (+ASan/UBSan) and runs each for N seconds (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DLLADA2_FUZZ=ON -DLLADA2_SANITIZE=ON -DLLADA2_TESTS=OFF >/dev/null
targets=()
for f in fuzz/*.cc; do targets+=("$(basename "$f" .cc)"); done
ninja -C build-fuzz "${targets[@]}"
for f in fuzz/*.cc; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .cc)
  corpus="fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "-- $name (${secs}s)"
  "build-fuzz/$name" -max_total_time="$secs" -max_len=65536 -print_final_stats=0 "$work" 2>&1 | tail -n 3
  rm -rf "$work"
done
