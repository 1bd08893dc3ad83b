#!/usr/bin/env bash
# Reprise against a real inference engine, loopback only, about two minutes:
#   1. two llama.cpp llama-server configurations start on the same
#      random-weight model (Llama 2's tokenizer, scripts/engine.sh), 4
#      slots each: production with its host-memory prompt cache, the
#      candidate without one (--cache-ram 0), so each slot keeps only the
#      prompt it last served;
#   2. the proxy goes in front of production and captures;
#   3. replay drives conversations of the public Mooncake trace through the
#      proxy — the first 20 that come back for more turns, about 66
#      requests over 16 minutes, compressed to one — with prompts
#      synthesised by the model's own tokenizer (read from the GGUF file)
#      and capped for a CPU engine;
#   4. the capture is replayed against the candidate at its recorded times,
#      and `replay compare --baseline captured` sets production as captured
#      against the candidate, with each side's prompt-cache hit rate.
# Each engine gets one thread (-t 1).
set -euo pipefail

BIN=${BIN:-bin}
ENGINE=${ENGINE:-$HOME/.cache/reprise/engine}
TRACES=${TRACES:-../shared/traces}
OUT=${OUT:-demo-engine-out}
CONVERSATIONS=${DEMO_CONVERSATIONS:-20}
TIME_SCALE=${DEMO_TIME_SCALE:-0.06}
MAX_PROMPT=${DEMO_MAX_PROMPT:-2048}
MAX_OUTPUT=${DEMO_MAX_OUTPUT:-32}
TRACE="$TRACES/mooncake-conversation.jsonl"
SERVER="$ENGINE/bin/llama-server"
MODEL="$ENGINE/models/tiny-spm.gguf"

[ -r "$TRACE" ] || { echo "demo-engine: trace not found: $TRACE (set TRACES=dir)" >&2; exit 1; }
[ -x "$SERVER" ] && [ -r "$MODEL" ] || { echo "demo-engine: no llama-server or model under $ENGINE (run make engine)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# engine NAME ARGS...: starts llama-server on a free port, waits for
# /health, sets $URL.
engine() {
  local name=$1; shift
  local port
  port=$(free_port)
  "$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$port" -t 1 --metrics --no-webui "$@" >"$OUT/$name.log" 2>&1 &
  pids+=("$!")
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    curl -fs "$URL/health" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "demo-engine: $name exited:" >&2; tail -20 "$OUT/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "demo-engine: $name not ready" >&2; tail -20 "$OUT/$name.log" >&2; exit 1
}

echo "== starting production (4 slots, prompt cache in host memory) and the candidate (4 slots, no prompt cache: --cache-ram 0)"
engine production --parallel 4 -c 16384
PROD=$URL
engine candidate --parallel 4 -c 16384 --cache-ram 0
CAND=$URL
echo "   production $PROD   candidate $CAND   model $MODEL"

echo "== starting the capturing proxy in front of production"
"$BIN/proxy" --listen 127.0.0.1:0 --upstream "$PROD" --capture-dir "$OUT/capture" >"$OUT/proxy.out" 2>"$OUT/proxy.log" &
PROXY_PID=$!
pids+=("$PROXY_PID")
PROXY=
for _ in $(seq 1 100); do
  PROXY=$(grep -o 'http://[0-9.:]*' "$OUT/proxy.out" 2>/dev/null | head -1 || true)
  [ -n "$PROXY" ] && break
  sleep 0.1
done
[ -n "$PROXY" ] || { echo "demo-engine: proxy did not start" >&2; cat "$OUT/proxy.log" >&2; exit 1; }

# The slice: among the trace's first 3,000 rows, the first conversations
# that come back (their first two prefix blocks, the shared system block
# and the conversation's own, recur), every turn of each, in trace order.
python3 - "$TRACE" "$CONVERSATIONS" >"$OUT/conversations.jsonl" <<'EOF'
import json, sys
path, want = sys.argv[1], int(sys.argv[2])
rows = []
with open(path) as f:
    for line in f:
        rows.append(json.loads(line))
        if len(rows) == 3000:
            break
key = lambda r: tuple(r["hash_ids"][:2]) if len(r["hash_ids"]) >= 2 else None
count, order = {}, []
for r in rows:
    k = key(r)
    if k is not None:
        if k not in count:
            order.append(k)
        count[k] = count.get(k, 0) + 1
keep = set([k for k in order if count[k] >= 2][:want])
for r in rows:
    if key(r) in keep:
        print(json.dumps(r))
EOF

echo "== production traffic: $(wc -l <"$OUT/conversations.jsonl") turns of $CONVERSATIONS Mooncake conversations through the proxy, times x$TIME_SCALE"
echo "   (prompts up to $MAX_PROMPT tokens of the model's own tokenizer, outputs up to $MAX_OUTPUT; production's metrics scraped)"
"$BIN/replay" run --target "$PROXY" --workload "mooncake:$OUT/conversations.jsonl" --time-scale "$TIME_SCALE" --profile trace \
  --max-prompt-tokens "$MAX_PROMPT" --max-output-tokens "$MAX_OUTPUT" --tokenizer "$MODEL" \
  --scrape-metrics "$PROD/metrics" --name production --output-dir "$OUT/production" --quiet >"$OUT/production.txt" 2>&1 ||
  { echo "demo-engine: driving production failed:" >&2; cat "$OUT/production.txt" >&2; exit 1; }
grep -E '^production: metrics' "$OUT/production.txt" | sed 's/^/   /' || true

kill -TERM "$PROXY_PID"
wait "$PROXY_PID" || { echo "demo-engine: proxy exited with an error:" >&2; cat "$OUT/proxy.log" >&2; exit 1; }

echo "== what the capture holds"
"$BIN/replay" inspect "$OUT/capture"

echo "== replaying the capture against the candidate at its recorded times, compared with production as captured"
"$BIN/replay" compare --target "candidate=$CAND" --workload "$OUT/capture" --profile trace --baseline captured \
  --tokenizer server --output-dir "$OUT/compare" --quiet

echo
echo "== the prompt cache on each side"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
def share(records):
    p = sum(r.get("prompt_tokens", 0) for r in records)
    c = sum(r.get("cached_tokens", 0) for r in records)
    return c / p if p else 0.0
prod = json.load(open(f"{out}/production/benchmarks.json"))["benchmarks"][0]
comp = json.load(open(f"{out}/compare/benchmarks.json"))["benchmarks"]
cand = next(b for b in comp if b["name"] == "candidate")
for name, b in (("production", prod), ("candidate", cand)):
    sm = b.get("server_metrics") or {}
    rate = sm.get("prefix_cache_hit_rate")
    share_ = b["metrics"].get("cached_token_share", 0.0)
    print(f"   {name:10s}  {sm.get('engine', '?')} prefix-cache hit rate "
          f"{'-' if rate is None else f'{100 * rate:.1f}%'} (its metrics), "
          f"{100 * share_:.1f}% of prompt tokens reported cached (usage)")
EOF
echo
echo "results: $OUT/compare/benchmarks.json, comparison.csv, report.html"
