#!/usr/bin/env bash
# Installs the Debian packages llada2.cpp needs to build and test (chromium: the chat page's browser test).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
      nlohmann-json3-dev libcli11-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev
      libutf8proc-dev zlib1g-dev libcpp-httplib-dev nodejs chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# npm fetches test data; some nodejs builds bundle it (and conflict with Debian's npm package).
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
