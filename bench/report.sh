#!/usr/bin/env bash
# bench/report.sh: issue 6's report budget. Renders a 10-point sweep of
# 100,000 requests (per-request records and scraped server metrics
# included) with TestLargeSweepReport, loads report.html in headless
# Chromium (`make browser` installs it), and prints its size against the
# 2 MB ceiling and its render time (navigation start -> load event and the
# charts painted) against the 2 s target. The test asserts the size, never
# the time: a shared machine is no stopwatch, so the time is printed here.
# The screenshot goes to $REPRISE_ARTIFACTS (default: a temporary directory
# printed below). About 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export REPRISE_ARTIFACTS=${REPRISE_ARTIFACTS:-$(mktemp -d)}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test -count=1 -v -run '^TestLargeSweepReport$' ./test/browser/ | tee "$out"
grep -q -- '--- PASS: TestLargeSweepReport' "$out" || { echo "bench-report: TestLargeSweepReport did not pass" >&2; exit 1; }
ms=$(sed -n 's/.*render time: \([0-9.]*\) ms.*/\1/p' "$out" | head -1)
bytes=$(sed -n 's/.*report.html \([0-9]*\) bytes (budget.*/\1/p' "$out" | head -1)
echo
echo "bench-report (load average $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ?))"
awk -v b="$bytes" 'BEGIN { printf "  report.html size:  %d bytes (%.0f KB), %s the 2 MB ceiling\n", b, b / 1024, (b < 2097152 ? "under" : "OVER") }'
awk -v t="$ms" 'BEGIN { printf "  render time:       %.0f ms in headless Chromium, %s the 2000 ms target\n", t, (t + 0 < 2000 ? "under" : "OVER") }'
echo "  screenshot:        $REPRISE_ARTIFACTS/report-sweep-100k.png"
