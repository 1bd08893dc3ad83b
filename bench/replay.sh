#!/usr/bin/env bash
# make bench-replay: how fast replay drives a server, against baselines on
# the same server in the same run.
#   1. wrk (HTTP/1.1 load generator, C) posting the same chat request;
#   2. replay --profile throughput (full SSE parsing, per-event timing);
#   3. replay --profile poisson at 2,000 req/s: send-lag percentiles and
#      achieved vs requested rate (issue floor: lag p99 <= 1 ms, within 1%),
#      and against bench/lagfloor, a minimal Go generator, at the same rate:
#      this machine's own lag floor, measured in the same run;
#   4. GuideLLM (PyPI, the Makefile's cached virtualenv) and replay at doubling
#      constant rates on the same server, each until its lag fails (GuideLLM
#      from 12.5 up to 3200 req/s, replay from 250 up to 16000): the highest
#      rate each sustains with send-lag p99 under 10 ms, and their ratio
#      (issue floor: 10x), with ≥ / ≤ where a side never failed. GuideLLM's
#      lag is request_start - targeted_start of every request in its
#      benchmarks.json (its scheduler's intended start vs the actual one).
# The server is `replay sim` with no prefill cost and 1 ms between tokens.
# Everything shares this machine's cores: read the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
SECS=${BENCH_SECONDS:-8}
CONC=${BENCH_CONCURRENCY:-64}
RATE=${BENCH_RATE:-2000}
GUIDELLM=${GUIDELLM:-$HOME/.cache/reprise/venv-guidellm/bin/guidellm}
LAG_SECS=${BENCH_LAG_SECONDS:-4}
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

# Poisson twice: the default dispatcher (sleeps until each due time; Go's
# timers wake it up to ~1 ms late when the process is idle) and --spin 1ms
# (the last millisecond before each due time spent yielding, not asleep).
for spin in 0 1ms; do
  "$BIN/replay" run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000" \
    --profile poisson --rate "$RATE" --max-seconds "$SECS" --spin "$spin" --output-dir "$OUT/po$spin" --quiet >/dev/null
  python3 - "$OUT/po$spin/benchmarks.json" "$RATE" "$spin" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['benchmarks'][0]['metrics']
lag = m['send_lag_ms']
req = float(sys.argv[2])
print('replay --profile poisson --spin %s: requested %s req/s; the seeded schedule drew %.1f, achieved %.1f (%.2f%% of requested, %.2f%% of scheduled; floor: within 1%% of requested)'
      % (sys.argv[3], sys.argv[2], m['scheduled_rate'], m['achieved_rate'], 100 * m['achieved_rate'] / req, 100 * m['achieved_rate'] / m['scheduled_rate']))
print('                           send lag p50 %.3f ms, p99 %.3f ms, max %.3f ms (floor: p99 <= 1 ms)' % (lag['p50'], lag['p99'], lag['max']))
PY
done

# This machine's own floor: bench/lagfloor, the least a Go open-loop
# generator does (sleep to each Poisson due time, start a goroutine, POST,
# drain; no SSE parsing, no recording), at the same rate on the same sim,
# interleaved with replay so drift hits both. Replay's lag is read against it.
go build -o "$OUT/lagfloor" ./bench/lagfloor
for i in 1 2; do
  read -r f50 f90 f99 fmax ffail < <("$OUT/lagfloor" -target "$SIM" -rate "$RATE" -seconds "$SECS" -output-tokens 16)
  "$BIN/replay" run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000" \
    --profile poisson --rate "$RATE" --max-seconds "$SECS" --output-dir "$OUT/pf$i" --quiet >/dev/null 2>&1
  python3 - "$OUT/pf$i/benchmarks.json" "$RATE" "$f50" "$f99" "$fmax" "$ffail" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['benchmarks'][0]['metrics']
lag = m['send_lag_ms']
f50, f99, fmax = (float(x) for x in sys.argv[3:6])
print('poisson @ %s req/s: minimal Go generator (bench/lagfloor) lag p50 %.3f ms, p99 %.3f ms, max %.3f ms (%s failed)'
      % (sys.argv[2], f50, f99, fmax, sys.argv[6]))
print('                     replay (SSE parsed, every event timed) lag p50 %.3f ms, p99 %.3f ms, max %.3f ms: p99 ratio replay / floor %.2f'
      % (lag['p50'], lag['p99'], lag['max'], lag['p99'] / f99 if f99 > 0 else float('nan')))
PY
done

# 4. Highest rate with send-lag p99 < 10 ms: GuideLLM vs replay, doubling rates
# until the lag fails (also at 20 ms, so that a finite ratio is printed when
# GuideLLM's fixed per-request overhead keeps it above 10 ms at every rate).
# A side that never fails within its ladder is reported as "≥ its top rung";
# one that fails at its lowest as "< its lowest rung".
below() { python3 -c "import sys; sys.exit(0 if float('$1') < float('$2') else 1)"; }
RP_RATES=${BENCH_REPLAY_RATES:-250 500 1000 2000 4000 8000 16000}
rp10=0 rp20=0 rp10_failed=0 rp20_failed=0 rplow=""
for r in $RP_RATES; do
  rplow=${rplow:-$r}
  "$BIN/replay" run --target "$SIM" --workload "synthetic:prompt_tokens=10,output_tokens=16,samples=10000000" \
    --profile constant --rate "$r" --max-seconds "$LAG_SECS" --output-dir "$OUT/lag$r" --quiet >/dev/null
  read -r p99 ach pct < <(python3 -c "import json;m=json.load(open('$OUT/lag$r/benchmarks.json'))['benchmarks'][0]['metrics'];print('%.3f %.1f %.1f'%(m['send_lag_ms']['p99'],m['achieved_rate'],100*m['achieved_rate']/$r))")
  echo "replay   constant @ $r req/s: send lag p99 $p99 ms, achieved $ach req/s ($pct% of requested)"
  if below "$p99" 10; then rp10=$r; else rp10_failed=1; fi
  if below "$p99" 20; then rp20=$r; else rp20_failed=1; break; fi
done

# GuideLLM, one invocation per rate so that the ladder stops where its lag
# fails: 12.5 req/s doubling up to 3200 (BENCH_GUIDELLM_RATES: another list).
g10="" g20="" g10_failed=0 g20_failed=0 glow=""
if [ -x "$GUIDELLM" ] && [ -f "$HOME/.cache/reprise/tokenizers/llama3/tokenizer.json" ]; then
  G_RATES=${BENCH_GUIDELLM_RATES:-12.5 25 50 100 200 400 800 1600 3200}
  g10=0 g20=0
  for r in ${G_RATES//,/ }; do
    glow=${glow:-$r}
    rm -f "$OUT/guidellm.json"
    (cd "$OUT" && timeout 300 "$GUIDELLM" run --backend "kind=openai_http,target=$SIM,model=m" \
      --profile kind=constant,rate=10 --override profile.rate "$r" \
      --constraint "kind=max_duration,seconds=$((LAG_SECS * 2))" \
      --data kind=synthetic_text,prompt_tokens=10,output_tokens=16 \
      --tokenizer "kind=huggingface_auto,model=$HOME/.cache/reprise/tokenizers/llama3" \
      --output "kind=json,path=$OUT/guidellm.json" --disable-console >"$OUT/guidellm.log" 2>&1) || true
    if [ ! -f "$OUT/guidellm.json" ]; then
      echo "guidellm run at $r req/s failed; the end of its log:"; tail -5 "$OUT/guidellm.log"
      break
    fi
    # GuideLLM's lag: request_start - targeted_start of every request (its
    # scheduler's intended start vs the actual one).
    p99=$(python3 - "$OUT/guidellm.json" "$r" <<'PY'
import json, sys
req = float(sys.argv[2])
p99 = None
for b in json.load(open(sys.argv[1]))['benchmarks']:
    reqs = b['requests']
    rs = reqs['successful'] + reqs['errored'] + reqs['incomplete']
    lags = sorted((r['info']['timings']['request_start'] - r['info']['timings']['targeted_start']) * 1000
                  for r in rs if r['info']['timings'].get('request_start') and r['info']['timings'].get('targeted_start'))
    if not lags:
        continue
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
    ach = b['metrics']['requests_per_second']['successful']['mean']
    print('guidellm constant @ %g req/s: send lag p99 %.3f ms (p50 %.3f), achieved %.1f req/s (%.1f%% of requested; %d requests)'
          % (req, p99, lags[len(lags) // 2], ach, 100 * ach / req, len(lags)), file=sys.stderr)
print('' if p99 is None else '%.3f' % p99)
PY
)
    if [ -z "$p99" ]; then
      echo "guidellm at $r req/s: no request timings in its results"
      break
    fi
    if below "$p99" 10; then g10=$r; else g10_failed=1; fi
    if below "$p99" 20; then g20=$r; else g20_failed=1; break; fi
  done
  [ -n "$glow" ] || g10=""
else
  echo "GuideLLM or the llama3 tokenizer is not installed (make test installs both): comparison skipped"
fi
if [ -n "$g10" ]; then
  python3 - "$rp10" "$rp10_failed" "$g10" "$g10_failed" "$rp20" "$rp20_failed" "$g20" "$g20_failed" "$rplow" "$glow" <<'PY'
import sys
a = sys.argv[1:]
rplow, glow = float(a[8]), float(a[9])
def side(v, failed, low):
    """The highest passing rate as (text, value, kind): kind '=' when a
    higher rung failed, '>=' when none did (the ladder ended first), '<'
    when even the lowest rung failed."""
    v, failed = float(v), a_bool(failed)
    if v == 0:
        return '< %g' % low, low, '<'
    if not failed:
        return '≥ %g' % v, v, '>='
    return '%g' % v, v, '='
def a_bool(s):
    return s == '1'
def line(t, r, g):
    rt, rv, rk = r
    gt, gv, gk = g
    # The ratio replay/guidellm, with the direction its bounds allow.
    x = rv / gv
    x = ('%.0fx' % x) if x >= 10 else ('%.2gx' % x)
    if gk == '<':
        ratio = ('> ' + x) if rk != '<' else 'unknown (both failed at their lowest rates)'
    elif gk == '>=':
        ratio = ('≤ ' + x) if rk == '=' else ('unknown (neither failed within its ladder)' if rk == '>=' else '< ' + x)
    else:
        ratio = {'=': '', '>=': '≥ ', '<': '< '}[rk] + x
    return 'send-lag p99 < %d ms: replay %s req/s, guidellm %s req/s: ratio %s' % (t, rt, gt, ratio)
print(line(10, side(a[0], a[1], rplow), side(a[2], a[3], glow)) + '  (floor 10x)')
print(line(20, side(a[4], a[5], rplow), side(a[6], a[7], glow)))
PY
fi
