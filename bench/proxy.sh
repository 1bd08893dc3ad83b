#!/usr/bin/env bash
# make bench-proxy: the capturing proxy vs direct and vs a plain
# httputil.ReverseProxy, measured in one run on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench/proxybench "$@"
