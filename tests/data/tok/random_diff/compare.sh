#!/usr/bin/env bash
# Differential check against npm tokenizers 0.23.2 on random strings (scripts, whitespace, emoji,
# combining marks, new Unicode letters, special-token literals, long words) for the five test tokenizers.
# Usage: compare.sh BUILD_DIR [SEED] [COUNT], with tokenizers@0.23.2 reachable through NODE_PATH and
# scripts/fetch-test-data.sh already run. Works in a scratch folder; prints mismatch counts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cli=$(cd "$1" && pwd)/llada2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
node "$here/gen.js" "${2:-1}" "${3:-3000}"
for n in ling-synth qwen3 llama3 deepseek_v3 gemma3; do
  dir=$here/../third_party/$n; [ "$n" = ling-synth ] && dir=$here/../ling-synth
  "$cli" tokenize --model "$dir" --input in.jsonl > "mine.$n.ids.jsonl"
  "$cli" detokenize --model "$dir" --input "$n.ids.jsonl" > "mine.$n.dec.jsonl"
  "$cli" detokenize --model "$dir" --skip-special --input "$n.ids.jsonl" > "mine.$n.decs.jsonl"
  for kind in ids dec decs; do
    bad=$(paste -d '\n' "$n.$kind.jsonl" "mine.$n.$kind.jsonl" | python3 -c '
import json, sys
lines = sys.stdin.read().split("\n")
print(sum(json.loads(a) != json.loads(b) for a, b in zip(lines[0::2], lines[1::2]) if a))')
    echo "$n $kind: $bad mismatches"
  done
done
