#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (+ASan/UBSan) and runs each for SECONDS (default 60),
# starting from fuzz/corpus/<target>/ (copied: the seeds stay as committed).
#
#   scripts/fuzz.sh 20      # CI's smoke run
#   scripts/fuzz.sh 1800    # a long run: about a million executions or more per target (docs/fuzzing.md)
#
# Extra arguments go to every fuzzer, e.g. scripts/fuzz.sh 600 -runs=1000000 (stops at a million
# executions, or after 600 s). Each target's last lines show its executions (#N) and speed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DLLADA2_FUZZ=ON -DLLADA2_SANITIZE=ON -DLLADA2_TESTS=OFF >/dev/null
targets=()
for f in fuzz/*.cc; do targets+=("$(basename "$f" .cc)"); done
ninja -C build-fuzz "${targets[@]}"

# The largest input each target can meet: a server request may be as large as the server's body
# limit (ServerOptions::max_body_bytes, 1 MiB) plus the byte that picks the endpoint.
max_len() {
  case "$1" in
    fuzz_server_request) echo $((1024 * 1024 + 1)) ;;
    *) echo 65536 ;;
  esac
}
# Targets whose input is JSON mutate with the JSON dictionary.
dict() {
  case "$1" in
    fuzz_server_request | fuzz_config | fuzz_tokenizer_json) echo "-dict=fuzz/json.dict" ;;
  esac
}

for name in "${targets[@]}"; do
  corpus="fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "-- $name (${secs}s, max_len $(max_len "$name"))"
  status=0
  # shellcheck disable=SC2046 # dict() is empty or one word
  "build-fuzz/$name" -max_total_time="$secs" -max_len="$(max_len "$name")" $(dict "$name") -print_final_stats=1 \
    -artifact_prefix=build-fuzz/"$name"- "$@" "$work" >"$work.log" 2>&1 || status=$?
  if [ "$status" -eq 0 ]; then
    grep -E '^(Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))' "$work.log" || true
  else
    tail -n 60 "$work.log"
    echo "$name failed (exit $status); the input is in build-fuzz/$name-*"
  fi
  rm -rf "$work" "$work.log"
  [ "$status" -eq 0 ] || exit "$status"
done
