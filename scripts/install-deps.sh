#!/usr/bin/env bash
# Installs the Debian packages llada2.cpp needs to build and test (chromium: the chat page's browser test).
# The python3-* packages and pybind11-dev: the Python module (python/) and its tests.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
      nlohmann-json3-dev libcli11-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev
      libutf8proc-dev zlib1g-dev libcpp-httplib-dev nodejs chromium
      pybind11-dev python3-dev python3-numpy python3-pytest python3-venv python3-pip python3-setuptools
      python3-wheel)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# npm fetches test data; some nodejs builds bundle it (and conflict with Debian's npm package).
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
