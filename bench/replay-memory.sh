#!/usr/bin/env bash
# make bench-replay-memory: the replayer's peak RSS over the whole Mooncake
# conversation trace (12,031 requests, ~12,000-token prompts, one hour)
# replayed at 20x speed against a fast sim, next to the trace's size. The
# issue's ceiling is 300 MB: memory must follow requests in flight, not the
# workload's length. About four minutes, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
TRACES=${TRACES:-../shared/traces}
SCALE=${SCALE:-0.05}
make -s build
out=$(mktemp -d)
cleanup() { [ -n "${sim:-}" ] && kill "$sim" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT
# A sim with room for the whole load: 1 ms per token, no per-sequence
# slowdown, so the replayer (not the server) is what is measured.
./bin/replay sim --listen 127.0.0.1:0 --slots 4096 --itl-base 1ms --itl-per-seq 0 --ttft-base 5ms \
  --prefill-per-token 0 --jitter 0 >"$out/sim.log" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q "http://" "$out/sim.log" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$out/sim.log" | head -1)
# Peak RSS of the replay process, from the kernel (getrusage of the child).
python3 - "$addr" "$TRACES/mooncake-conversation.jsonl" "$SCALE" "$out" <<'PY'
import resource, subprocess, sys, time
addr, trace, scale, out = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.run(["./bin/replay", "run", "--target", addr, "--workload", "mooncake:" + trace,
                    "--time-scale", scale, "--output-dir", out + "/results", "--quiet"],
                   capture_output=True, text=True)
wall = time.monotonic() - t0
if p.returncode != 0:
    print(p.stdout, p.stderr)
    sys.exit(p.returncode)
rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
lines = sum(1 for _ in open(trace))
import json
b = json.load(open(out + "/results/benchmarks.json"))["benchmarks"][-1]["metrics"]
print(f"replay-memory: Mooncake conversation trace, {lines} requests, time scale {scale} ({wall:.0f} s wall)")
print(f"  successful {b['requests']['successful']}, errored {b['requests']['errored']}, concurrency mean {b['concurrency_mean']:.1f} max {b['concurrency_max']}")
print(f"  send lag p99 {b['send_lag_ms']['p99']:.2f} ms, output tokens/s {b['output_tokens_per_second']:.0f}")
print(f"  peak RSS of replay: {rss_mb:.0f} MB   (ceiling 300 MB)")
PY
