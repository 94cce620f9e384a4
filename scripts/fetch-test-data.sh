#!/usr/bin/env bash
# Fetches large third-party test data that is not committed (none yet).
set -euo pipefail
