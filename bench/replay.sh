#!/usr/bin/env bash
# make bench-replay: how fast replay drives a server, against baselines on
# the same server in the same run.
#   1. wrk (HTTP/1.1 load generator, C) posting the same chat request;
#   2. replay --profile throughput (full SSE parsing, per-event timing);
#   3. replay --profile poisson at a fixed rate: send-lag percentiles.
# The server is `replay sim` with no prefill cost and 1 ms between tokens.
# Everything shares this machine's cores: read the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
SECS=${BENCH_SECONDS:-8}
CONC=${BENCH_CONCURRENCY:-64}
RATE=${BENCH_RATE:-500}
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$OUT"' EXIT

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk from Debian's packages for the baseline"
  (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1)) || true
fi

"$BIN/replay" sim --listen 127.0.0.1:0 --slots 100000 --ttft-base 0s --prefill-per-token 0s \
  --itl-base 1ms --itl-per-seq 0s --jitter 0 --prefix-cache=false >"$OUT/sim.out" 2>&1 &
for _ in $(seq 50); do grep -q http:// "$OUT/sim.out" && break; sleep 0.1; done
SIM=$(grep -o 'http://[0-9.:]*' "$OUT/sim.out" | head -1)
BODY='{"model":"m","stream":true,"max_tokens":16,"ignore_eos":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":" the model answers with a short reply about data"}]}'

wrk_rps=""
if command -v wrk >/dev/null 2>&1; then
  cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
  wrk -t2 -c"$CONC" -d"${SECS}s" -s "$OUT/post.lua" "$SIM/v1/chat/completions" >"$OUT/wrk.txt"
  wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")
  echo "wrk                      : $wrk_rps req/s ($CONC connections, ${SECS}s)"
else
  echo "wrk not available: ratio to wrk skipped"
fi

"$BIN/replay" run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000" \
  --profile throughput --max-concurrency "$CONC" --max-seconds "$SECS" --output-dir "$OUT/tp" --quiet >/dev/null
rp_rps=$(python3 -c "import json;m=json.load(open('$OUT/tp/benchmarks.json'))['benchmarks'][0]['metrics'];print('%.0f'%m['requests_per_second'])")
echo "replay --profile throughput: $rp_rps req/s (same concurrency, every SSE event timed)"
if [ -n "$wrk_rps" ]; then
  python3 -c "print('ratio replay / wrk       : %.2f  (floor 0.7)' % ($rp_rps / $wrk_rps))"
fi

"$BIN/replay" run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000" \
  --profile poisson --rate "$RATE" --max-seconds "$SECS" --output-dir "$OUT/po" --quiet >/dev/null
python3 - "$OUT/po/benchmarks.json" "$RATE" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['benchmarks'][0]['metrics']
lag = m['send_lag_ms']
print('replay --profile poisson : requested %s req/s; the seeded schedule drew %.1f, achieved %.1f (%.2f%% of scheduled)'
      % (sys.argv[2], m['scheduled_rate'], m['achieved_rate'], 100 * m['achieved_rate'] / m['scheduled_rate']))
print('                           send lag p50 %.3f ms, p99 %.3f ms, max %.3f ms' % (lag['p50'], lag['p99'], lag['max']))
PY
