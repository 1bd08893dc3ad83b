#!/usr/bin/env bash
# make bench-workload: how fast workloads are read and prompts synthesised,
# on one core (GOMAXPROCS=1), against the issue's floors:
#   - reading the public Mooncake trace from its file, streaming: >= 500,000 records/s;
#     the same trace concatenated 20x (about 60 MB) must leave memory flat;
#   - synthesis at Mooncake conversation lengths (~12,000-token prompts, cached
#     blocks): >= 2,000 prompts/s.
# Wall-clock rates fall when other processes share the machine; records (or
# prompts) per CPU second is what one core does, and is what the floors are
# checked against. About 30 seconds. Exits 1 when a floor is missed or when
# reading the trace 20x grows the live heap past 1.5x reading it once (memory
# must not follow the file's size).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export REPRISE_TRACES=$(realpath "${TRACES:-${REPRISE_TRACES:-../shared/traces}}") # absolute: go test runs in the package directory
export GOMAXPROCS=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test -run '^$' -bench '^(BenchmarkMooncake|BenchmarkMooncakeConcatenated|BenchmarkAzure)$' -benchtime 1s -cpu 1 -benchmem ./internal/workload/ | tee "$out"
"$GO" test -run '^$' -bench '^(BenchmarkPrompt12k|BenchmarkMooncakeTraceBodies)$' -benchtime 1s -cpu 1 -benchmem ./internal/synth/ | tee -a "$out"
# OpenTelemetry GenAI spans (otel:): 100,000 and 1,000,000 spans, both layouts (about 100 s).
"$GO" test -run '^$' -bench '^BenchmarkOTel$' -benchtime 1x -cpu 1 -benchmem ./internal/workload/ | tee -a "$out"
# metric NAME UNIT: the value printed before UNIT on benchmark NAME's line
metric() { awk -v n="$1" -v u="$2" '$1 == n { for (i = 2; i < NF; i++) if ($(i+1) == u) print $i }' "$out"; }
verdict() { awk -v v="$1" -v f="$2" 'BEGIN { print (v + 0 >= f ? "meets" : "BELOW") " the floor of " f }'; }
failed=0
# check VALUE FLOOR WHAT: count a value missing or below its floor
check() { awk -v v="$1" -v f="$2" 'BEGIN { exit !(v != "" && v + 0 >= f) }' || { echo "FAIL: $3: ${1:-missing} (floor $2)" >&2; failed=1; }; }
rec=$(metric BenchmarkMooncake records/cpu-s); recw=$(metric BenchmarkMooncake records/s)
h1=$(metric BenchmarkMooncakeConcatenated/x1 peak-live-heap-KB); h20=$(metric BenchmarkMooncakeConcatenated/x20 peak-live-heap-KB)
r1=$(metric BenchmarkMooncakeConcatenated/x1 max-RSS-MB); r20=$(metric BenchmarkMooncakeConcatenated/x20 max-RSS-MB)
n20=$(metric BenchmarkMooncakeConcatenated/x20 records/pass)
pr=$(metric BenchmarkPrompt12k/shared prompts/cpu-s); prw=$(metric BenchmarkPrompt12k/shared prompts/s)
tr=$(metric BenchmarkMooncakeTraceBodies prompts/cpu-s); trw=$(metric BenchmarkMooncakeTraceBodies prompts/s)
echo
echo "bench-workload (one core, GOMAXPROCS=1; load average $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ?))"
printf '  Mooncake reading:   %8.0f records/s per CPU second (%.0f wall), %s\n' "$rec" "$recw" "$(verdict "$rec" 500000)"
printf '  memory, streaming:  live heap %s KB reading the trace once, %s KB reading it 20x (%s records); peak RSS %s MB then %s MB\n' "$h1" "$h20" "$n20" "$r1" "$r20"
printf '  synthesis 12k:      %8.0f prompts/s per CPU second (%.0f wall), cached blocks, %s\n' "$pr" "$prw" "$(verdict "$pr" 2000)"
printf '  Mooncake bodies:    %8.0f prompts/s per CPU second (%.0f wall), the trace in order (cache hits and misses as it has them)\n' "$tr" "$trw"
os1=$(metric BenchmarkOTel/spans/spans=100000 peak-live-heap-KB); os10=$(metric BenchmarkOTel/spans/spans=1000000 peak-live-heap-KB)
oo1=$(metric BenchmarkOTel/otlp/spans=100000 peak-live-heap-KB); oo10=$(metric BenchmarkOTel/otlp/spans=1000000 peak-live-heap-KB)
osr=$(metric BenchmarkOTel/spans/spans=1000000 spans/cpu-s); oor=$(metric BenchmarkOTel/otlp/spans=1000000 spans/cpu-s)
printf '  OTel reading:       %8.0f spans/s per CPU second span-per-line, %.0f OTLP (1,000,000 spans)\n' "$osr" "$oor"
printf '  memory, OTel:       live heap %s KB then %s KB (span-per-line, 100k then 1M spans); %s KB then %s KB (OTLP)\n' "$os1" "$os10" "$oo1" "$oo10"
for p in "$os1:$os10:span-per-line" "$oo1:$oo10:OTLP"; do IFS=: read -r a b name <<<"$p"
  if [ -z "$a" ] || [ -z "$b" ] || awk -v a="$a" -v b="$b" 'BEGIN { exit !(b + 0 > 1.5 * a) }'; then
    echo "FAIL: OTel $name memory follows file size: ${b:-missing} KB at 1M spans against ${a:-missing} KB at 100k (limit 1.5x)" >&2; failed=1; fi; done
check "$rec" 500000 "Mooncake reading, records per CPU second"
check "$pr" 2000 "synthesis of 12k-token prompts, prompts per CPU second"
if [ -z "$h1" ] || [ -z "$h20" ]; then
  echo "FAIL: the streaming memory benchmark printed no peak-live-heap-KB" >&2; failed=1
elif awk -v a="$h1" -v b="$h20" 'BEGIN { exit !(b + 0 > 1.5 * a) }'; then
  echo "FAIL: memory follows file size: live heap ${h20} KB reading the trace 20x against ${h1} KB once (limit 1.5x)" >&2; failed=1
fi
exit "$failed"
