#!/usr/bin/env bash
# make bench-proxy-rss: peak RSS of the proxy program (VmHWM from
# /proc/PID/status) while 2,000 SSE streams are open through it at once,
# against a slow-streaming upstream (an event every 250 ms for 10 s), next
# to the issue's 256 MB ceiling. Loopback only; about 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
# The proxy program as `make build` left it in bin/ (PROXY_BIN to override).
STREAMS=${STREAMS:-2000}
PROXY_BIN=${PROXY_BIN:-bin/proxy}
"${GO:-go}" run ./bench/proxybench -streams "$STREAMS" -proxy-bin "$PROXY_BIN" "$@"
