#!/usr/bin/env bash
# The accuracy table of README.md: the demo model's held-out set through `llada2 eval` under the
# decoding settings, arithmetic modes and weight formats that trade quality for speed.
#   bash bench/eval_demo.sh [PER_TASK] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
per_task=${1:-200}
out=${2:-/tmp/llada2-eval}
model=models/llada2-demo
tasks=$model/eval.jsonl
bin=${LLADA2_BIN:-./build/llada2}
mkdir -p "$out"
for q in q8 q4; do
  [ -f "$out/$q/config.json" ] || { rm -rf "$out/$q"; $bin quantize --model $model --type $q --out "$out/$q" >/dev/null; }
done
run() {  # name, model, args...
  local name=$1 m=$2; shift 2
  echo "== $name" >&2
  $bin eval --model "$m" --tasks $tasks --limit "$per_task" --json -q "$@" > "$out/$name.json"
}
run decoding $model --sweep threshold=0.5,0.7,0.95 editing_threshold=none,0.5
run blocks $model --sweep block_length=8,16
run bidirectional $model --attention bidirectional
run exact $model --exact
run q8 "$out/q8"
run q4 "$out/q4"
python3 bench/eval_table.py "$out"/{decoding,blocks,bidirectional,exact,q8,q4}.json
