#!/usr/bin/env bash
# make bench-shard: one plan split across 1, 2 and 4 replay processes on
# this host against the same sim (poisson RATE req/s for SECS s), merged:
# the aggregate achieved rate and the merged send-lag p99, with each
# shard's own client-lag p99. On a 2-core host this shows the merge and
# the shared start, not a speed-up: the shards share the cores. Then
# replay merge itself on 8 shards x 1,000,000 requests (time, results/s,
# peak heap). About three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
GO=${GO:-go}
RATE=${RATE:-800}
SECS=${SECS:-8}
OUT=$(mktemp -d)
trap 'kill $SIMPID 2>/dev/null || true; rm -rf "$OUT"' EXIT

"$BIN/replay" sim --listen 127.0.0.1:0 --slots 100000 --ttft-base 2ms --prefill-per-token 0s --itl-base 1ms --itl-per-seq 0s >"$OUT/sim.out" 2>&1 &
SIMPID=$!
for _ in $(seq 50); do grep -q http:// "$OUT/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM=$(grep -o 'http://[0-9.:]*' "$OUT/sim.out" | head -1)

plan=(run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000"
  --profile poisson --rate "$RATE" --max-seconds "$SECS" --quiet --scrape-metrics off --prompt-namespace none)
for n in 1 2 4; do
  dir="$OUT/n$n"
  at=$(python3 -c "import datetime;print((datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(seconds=3)).isoformat())")
  if [ "$n" = 1 ]; then
    "$BIN/replay" "${plan[@]}" --start-at "$at" --output-dir "$dir/merged" >/dev/null
  else
    pids=()
    for i in $(seq 0 $((n - 1))); do
      "$BIN/replay" "${plan[@]}" --shard "$i/$n" --start-at "$at" --output-dir "$dir/run/shard-$i" >/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    "$BIN/replay" merge "$dir/run" --output-dir "$dir/merged" --quiet >/dev/null
  fi
  python3 - "$dir/merged/benchmarks.json" "$n" "$RATE" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))['benchmarks'][0]
m, n, rate = b['metrics'], sys.argv[2], float(sys.argv[3])
shards = ', '.join('%s %.2f' % (s['shard'], s['client_lag_ms']['p99']) for s in b.get('shards', []))
print('%s process(es): achieved %.1f req/s (%.1f%% of %g requested), send lag p99 %.2f ms, client lag p99 %.2f ms%s'
      % (n, m['achieved_rate'], 100 * m['achieved_rate'] / rate, rate, m['send_lag_ms']['p99'], m['client_lag_ms']['p99'],
         ('; per shard client lag p99 (ms): ' + shards) if shards else ''))
PY
done
echo "replay merge, 8 shards x 1,000,000 requests (8 chunks each):"
SHARDS=8 REQUESTS=1000000 "$GO" test -run '^$' -bench '^BenchmarkMerge$' -benchtime 1x -timeout 30m ./internal/bench/ | grep -E '^Benchmark'
