#!/usr/bin/env bash
# Load test for `llada2 serve` on loopback: N chat requests, C at a time; prints requests/s and
# latency percentiles. Usage: bench/load_server.sh [-n N] [-c C] [-p PORT] [-t MAX_TOKENS] [-k API_KEY] [-s]
# (-s: streaming requests; latency is then time to the last byte, ttfb is reported too)
set -euo pipefail
n=16 c=4 port=8080 max_tokens=32 key="" stream=false
while getopts "n:c:p:t:k:s" opt; do
  case $opt in
    n) n=$OPTARG ;; c) c=$OPTARG ;; p) port=$OPTARG ;; t) max_tokens=$OPTARG ;; k) key=$OPTARG ;; s) stream=true ;;
    *) sed -n 2,4p "$0"; exit 2 ;;
  esac
done
url="http://127.0.0.1:${port}/v1/chat/completions"  # loopback only, by design
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

one() {
  local i=$1
  local body
  body=$(printf '{"messages":[{"role":"user","content":"Request %d: tell me something."}],"max_tokens":%d,"seed":%d,"stream":%s}' \
    "$i" "$max_tokens" "$i" "$stream")
  local auth=()
  [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
  curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total}\n' "${auth[@]}" \
    -H 'Content-Type: application/json' -d "$body" "$url"
}
export -f one
export url max_tokens key stream

start=$(date +%s%N)
seq 1 "$n" | xargs -P "$c" -I{} bash -c 'one {}' > "$out/results"
end=$(date +%s%N)

pct() {  # pct FILE P: the P-th percentile of the sorted numbers in FILE
  awk -v p="$2" '{ v[NR] = $1 } END { if (NR) printf "%.3f", v[int((NR - 1) * p) + 1] }' "$1"
}
awk '$1 == 200 { print $3 }' "$out/results" | sort -g > "$out/lat"
awk '$1 == 200 { print $2 }' "$out/results" | sort -g > "$out/ttfb"
awk -v n="$n" -v c="$c" -v ns="$((end - start))" 'BEGIN {
  wall = ns / 1e9; printf "requests: %d, concurrency: %d, wall: %.2f s, requests/s: %.2f\n", n, c, wall, n / wall }'
awk '{ codes[$1]++ } END { for (k in codes) printf "  HTTP %s: %d\n", k, codes[k] }' "$out/results"
[ -s "$out/lat" ] || exit 1
echo "latency  p50 $(pct "$out/lat" 0.5) s  p90 $(pct "$out/lat" 0.9) s  max $(pct "$out/lat" 1.0) s"
echo "ttfb     p50 $(pct "$out/ttfb" 0.5) s  p90 $(pct "$out/ttfb" 0.9) s"
