#!/usr/bin/env bash
# Step time, prefill speed and KV cache size against the prompt's length (README "Long prompts"):
# `llada2 bench` at each prompt length, in the fast mode and with --exact, one markdown row each.
#   bash bench/long_prompts.sh MODEL [LENGTHS] [GEN_LENGTH]
# LENGTHS is comma-separated (default 64,2048,8192,32768); LLADA2_BIN picks the binary, extra
# bench flags go in LLADA2_BENCH_FLAGS (e.g. "--bandwidth-gbs 34 --peak-gflops 120").
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bash bench/long_prompts.sh MODEL [LENGTHS] [GEN_LENGTH]}
lengths=${2:-64,2048,8192,32768}
gen=${3:-64}
bin=${LLADA2_BIN:-./build/llada2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for mode in fast exact; do
  for p in ${lengths//,/ }; do
    echo "== $mode, prompt $p" >&2
    flag=(); [ "$mode" = exact ] && flag=(--exact)
    # shellcheck disable=SC2086
    "$bin" bench --model "$model" --prompt-length "$p" --gen-length "$gen" --block-length 32 --steps 32 \
      "${flag[@]}" ${LLADA2_BENCH_FLAGS:-} --json > "$out/$mode-$p.json"
  done
done
python3 - "$out" "$lengths" <<'PY'
import json, sys
out, lengths = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
print("| mode | prompt | prefill tokens/s | step median | step / step at the shortest | attention ms/step | KV cache | peak RSS |")
print("|---|---:|---:|---:|---:|---:|---|---:|")
for mode in ("fast", "exact"):
    base = None
    for p in lengths:
        j = json.load(open(f"{out}/{mode}-{p}.json"))
        step = j["step_seconds_median"] * 1e3
        base = base or step
        pre = "-" if j["prefill_tokens_per_second"] is None else f"{j['prefill_tokens_per_second']:.0f}"
        kv = f"{j['kv_cache_bytes'] / 1e6:.1f} MB {j['kv_cache_dtype']}" if j["kv_cache_dtype"] else "-"
        print(f"| {mode} | {p} | {pre} | {step:.1f} ms | {step / base:.2f}x | "
              f"{j['phases']['attention']['ms_per_step']:.1f} | {kv} | {j['peak_rss_mb'] / 1e3:.2f} GB |")
PY
