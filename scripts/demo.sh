#!/usr/bin/env bash
# Reprise end to end on one machine, loopback only, about two minutes:
#   1. a "production" simulator and a slower "candidate" simulator start;
#   2. the proxy goes in front of production and captures;
#   3. the official openai-go SDK replays the first minutes of the public Azure
#      code-completion trace (compressed in time) through the proxy;
#   4. the proxy gets SIGTERM and writes every completed record;
#   5. replay re-issues the capture against the candidate at its recorded
#      timing and prints production-as-captured next to the candidate.
set -euo pipefail

BIN=${BIN:-bin}
TRACES=${TRACES:-../shared/traces}
OUT=${OUT:-demo-out}
FROM=${DEMO_FROM:-3m}        # where in the trace to start (its first minutes are nearly idle)
MINUTES=${DEMO_MINUTES:-2}   # minutes of the trace to replay
SPEEDUP=${DEMO_SPEEDUP:-4}   # compression in time
TRACE="$TRACES/azure-2023-code.csv"

[ -r "$TRACE" ] || { echo "demo: trace not found: $TRACE (set TRACES=dir)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# start NAME CMD...: runs CMD in the background, waits for its
# "listening on http://ADDR" line and sets $ADDR.
start() {
  local name=$1; shift
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    ADDR=$(grep -o 'http://[0-9.:]*' "$OUT/$name.out" 2>/dev/null | head -1 || true)
    [ -n "$ADDR" ] && { LAST_PID=$pid; return 0; }
    kill -0 "$pid" 2>/dev/null || { echo "demo: $name exited:" >&2; cat "$OUT/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo: $name did not start" >&2; cat "$OUT/$name.log" >&2; exit 1
}

echo "== starting production sim (32 slots) and candidate sim (12 slots, slower prefill and decode)"
start prod "$BIN/replay" sim --listen 127.0.0.1:0 --model demo-model --slots 32 \
  --ttft-base 15ms --prefill-per-token 10us --itl-base 6ms --itl-per-seq 200us --seed 1
PROD=$ADDR
start candidate "$BIN/replay" sim --listen 127.0.0.1:0 --model demo-model --slots 12 \
  --ttft-base 25ms --prefill-per-token 20us --itl-base 9ms --itl-per-seq 600us --seed 2
CAND=$ADDR
echo "   production $PROD   candidate $CAND"

echo "== starting the capturing proxy in front of production"
start proxy "$BIN/proxy" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "$PROD" --capture-dir "$OUT/capture"
PROXY=$ADDR
PROXY_PID=$LAST_PID

echo "== driving production through the proxy with the openai-go SDK: $MINUTES min of the Azure code trace from $FROM, ${SPEEDUP}x faster"
"$BIN/demo-client" --base-url "$PROXY/v1" --trace "$TRACE" --from "$FROM" --minutes "$MINUTES" --speedup "$SPEEDUP" --model demo-model

echo "== SIGTERM to the proxy: drain and write every record"
kill -TERM "$PROXY_PID"
wait "$PROXY_PID" || { echo "demo: proxy exited with an error:" >&2; cat "$OUT/proxy.log" >&2; exit 1; }
grep -h "proxy stopped" "$OUT/proxy.log" | sed 's/^/   /' || true

echo "== what the capture holds"
"$BIN/replay" inspect "$OUT/capture"

echo "== replaying the capture against the candidate at its recorded timing"
"$BIN/replay" run --target "$CAND" --workload "$OUT/capture" --profile trace \
  --output-dir "$OUT/results" --label demo=azure-code --quiet

echo
echo "results: $OUT/results/benchmarks.json, benchmarks.csv, report.html"
