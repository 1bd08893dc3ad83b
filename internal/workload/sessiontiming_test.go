package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nightTurn is one call of the synthetic night's trace.
type nightTurn struct {
	session string
	start   time.Duration // from 20:00
	dur     time.Duration
}

// nightTrace is eight hours of agent sessions recorded as OTel spans, one
// span a line: a burst from 20:00 to about 20:35 and another from 03:00,
// idle in between, and one session, "lunch", that waits 20 minutes in the
// middle of the first burst and comes back at 03:10.
func nightTrace() []nightTurn {
	var turns []nightTurn
	for _, burst := range []time.Duration{0, 7 * time.Hour} {
		for i := range 40 {
			s := fmt.Sprintf("b%d-%02d", burst/time.Hour, i)
			at := burst + time.Duration(i)*45*time.Second
			for k := range 4 {
				// 2.5 s calls, think times growing from 10 s
				turns = append(turns, nightTurn{s, at, 2500 * time.Millisecond})
				at += 2500*time.Millisecond + time.Duration(10+5*k)*time.Second
			}
		}
	}
	turns = append(turns,
		nightTurn{"lunch", 5 * time.Minute, 3 * time.Second},
		nightTurn{"lunch", 25 * time.Minute, 3 * time.Second},
		nightTurn{"lunch", 7*time.Hour + 10*time.Minute, 3 * time.Second})
	slices.SortStableFunc(turns, func(a, b nightTurn) int { return int(a.start - b.start) })
	return turns
}

// writeNight writes turns as a session-per-line OTel file (each session's
// spans on its line, sessions by first start), the layout a gateway's
// exporter grouped by trace gives.
func writeNight(t *testing.T, turns []nightTurn) string {
	t.Helper()
	base := time.Date(2025, 3, 1, 20, 0, 0, 0, time.UTC)
	var order []string
	spans := map[string][]map[string]any{}
	for i, tr := range turns {
		if _, ok := spans[tr.session]; !ok {
			order = append(order, tr.session)
		}
		spans[tr.session] = append(spans[tr.session], map[string]any{
			"trace_id": tr.session, "span_id": fmt.Sprintf("s%d", i),
			"start_time": base.Add(tr.start).Format(time.RFC3339Nano), "duration": tr.dur.Seconds(),
			"attributes": map[string]any{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 100 + i, "gen_ai.usage.output_tokens": 20},
		})
	}
	var b strings.Builder
	for _, s := range order {
		line, err := json.Marshal(map[string]any{"spans": spans[s]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "night.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSessionTimingNight turns the eight-hour night into a short test:
// waits inside sessions cut to 5 minutes, idle gaps before sessions to 1
// minute, then a time scale of 0.3. Every burst keeps its shape (the gaps
// between its requests, the lunch session's apart, are the recorded gaps
// times the scale), the night shrinks to the pack's minute, the lunch
// session's 20-minute wait becomes 5 minutes, and the whole fits in 20
// minutes.
func TestSessionTimingNight(t *testing.T) {
	turns := nightTrace()
	path := writeNight(t, turns)
	recorded := map[string]time.Duration{} // span id → recorded start
	for i, tr := range turns {
		recorded[fmt.Sprintf("s%d", i)] = tr.start
	}
	const scale = 0.3
	for _, horizon := range []time.Duration{0, 8 * time.Hour} {
		t.Run(fmt.Sprintf("horizon=%v", horizon), func(t *testing.T) {
			st := SessionTiming{MaxWait: 5 * time.Minute, MaxIdle: time.Minute, Horizon: horizon}
			if err := st.Validate(); err != nil {
				t.Fatal(err)
			}
			src, err := OpenOTel(path, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out := TimeScale(st.Apply(src), scale)
			got := drain(t, out)
			defer closeSource(out)
			if len(got) != len(turns) {
				t.Fatalf("%d requests, %d recorded", len(got), len(turns))
			}
			for i := 1; i < len(got); i++ {
				if got[i].Offset < got[i-1].Offset {
					t.Fatalf("request %d at %v after %v: out of order", i, got[i].Offset, got[i-1].Offset)
				}
			}
			// Each burst keeps its shape: between any two of its requests
			// (lunch's apart) the gap is the recorded one times the scale.
			night := 7 * time.Hour
			var firstA, lastA, firstB *Request
			for i := range got {
				r := &got[i]
				if strings.HasPrefix(r.Session, "lunch") {
					continue
				}
				inB := recorded[r.ID] >= night
				switch {
				case !inB && firstA == nil:
					firstA = r
				case inB && firstB == nil:
					firstB = r
				}
				if !inB {
					lastA = r
				}
				ref := firstA
				if inB {
					ref = firstB
				}
				want := scaleDuration(recorded[r.ID]-recorded[ref.ID], scale)
				if d := r.Offset - ref.Offset; absDur(d-want) > time.Microsecond {
					t.Errorf("%s: %v after its burst's first request, recorded %v × %.3f = %v", r.ID, d, recorded[r.ID]-recorded[ref.ID], scale, want)
				}
			}
			// The night between the bursts shrank to the pack's minute.
			if gap := firstB.Offset - lastA.Offset; absDur(gap-scaleDuration(time.Minute, scale)) > time.Microsecond {
				t.Errorf("night gap %v, want 1m × %.3f", gap, scale)
			}
			// Lunch's 20-minute wait is 5 minutes now, think time too.
			var lunch []Request
			for _, r := range got {
				if r.Session == "lunch" {
					lunch = append(lunch, r)
				}
			}
			if len(lunch) != 3 {
				t.Fatalf("lunch has %d turns", len(lunch))
			}
			if d := lunch[1].Offset - lunch[0].Offset; absDur(d-scaleDuration(5*time.Minute, scale)) > time.Microsecond {
				t.Errorf("lunch's 20-minute wait became %v, want 5m × %.3f", d, scale)
			}
			for _, r := range lunch[1:] {
				if r.Delay > scaleDuration(5*time.Minute, scale) {
					t.Errorf("lunch turn %d think time %v, more than the clamp", r.Turn, r.Delay)
				}
			}
			// Its return at 03:10: with an 8-hour horizon it lands 5 minutes
			// after its previous turn, in the first burst; with the default
			// (1 hour) the first burst has gone out when it is read, so it
			// is sent as soon as it can be, and that is warned about.
			w := strings.Join(warnings(out), "\n")
			if horizon > 0 {
				if d := lunch[2].Offset - lunch[1].Offset; absDur(d-scaleDuration(5*time.Minute, scale)) > time.Microsecond {
					t.Errorf("lunch's overnight wait became %v, want 5m × %.3f", d, scale)
				}
				if strings.Contains(w, "--clamp-wait") {
					t.Errorf("warned: %s", w)
				}
			} else {
				if lunch[2].Offset < firstB.Offset {
					t.Errorf("lunch's return at %v, before the second burst's start %v that went out first", lunch[2].Offset, firstB.Offset)
				}
				if !strings.Contains(w, "--clamp-wait: 1 session turns came back after more than 1h0m0s idle") {
					t.Errorf("warnings %q", w)
				}
			}
			if last := got[len(got)-1].Offset; last > 20*time.Minute {
				t.Errorf("the night replays in %v, want 20 minutes at most", last)
			}
		})
	}
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

// TestSessionTimingPackTable checks packing alone on requests without
// sessions, where every gap before a request is an idle gap.
func TestSessionTimingPackTable(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		in, want []time.Duration
	}{
		{in: []time.Duration{0, 1 * s, 11 * s, 7211 * s, 7214 * s}, want: []time.Duration{0, 1 * s, 11 * s, 41 * s, 44 * s}},
		{in: []time.Duration{5 * s, 5 * s, 100 * s}, want: []time.Duration{5 * s, 5 * s, 35 * s}},
		{in: []time.Duration{0, 30 * s, 61 * s}, want: []time.Duration{0, 30 * s, 60 * s}},
	} {
		path := filepath.Join(t.TempDir(), "p.jsonl")
		var b strings.Builder
		for _, off := range c.in {
			fmt.Fprintf(&b, "{\"timestamp\": %d, \"input_length\": 10, \"output_length\": 5}\n", off.Milliseconds())
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := OpenMooncake(path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Duration
		for _, r := range drain(t, SessionTiming{MaxIdle: 30 * s}.Apply(src)) {
			got = append(got, r.Offset)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%v packed to 30s: %v, want %v", c.in, got, c.want)
		}
	}
}

// TestSessionTimingDelayOnly: AIPerf session rows share their first row's
// offset and carry think times as delay: the clamp cuts the delays and
// moves nothing.
func TestSessionTimingDelayOnly(t *testing.T) {
	path := write(t, "aiperf.jsonl", `{"session_id":"a","timestamp":0,"input_length":10,"output_length":5}
{"session_id":"a","delay":900000,"input_length":10,"output_length":5}
{"session_id":"a","delay":2000,"input_length":10,"output_length":5}
`)
	src, err := OpenMooncake(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, SessionTiming{MaxWait: time.Minute}.Apply(src))
	want := []time.Duration{0, time.Minute, 2 * time.Second}
	for i, r := range got {
		if r.Offset != 0 || r.Delay != want[i] {
			t.Errorf("turn %d: offset %v delay %v, want 0 and %v", i, r.Offset, r.Delay, want[i])
		}
	}
}

func TestSessionTimingValidateAndParse(t *testing.T) {
	bad := SessionTiming{MaxWait: -time.Second, MaxIdle: -1}
	err := bad.Validate()
	var fe *FieldError
	if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), "SessionTiming.MaxWait -1s") || !strings.Contains(err.Error(), "SessionTiming.MaxIdle -1ns") {
		t.Errorf("Validate: %v", err)
	}
	short := SessionTiming{MaxWait: time.Hour, Horizon: time.Minute}
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "SessionTiming.Horizon 1m0s: must be longer than MaxWait 1h0m0s") {
		t.Errorf("Validate of a horizon shorter than the clamp: %v", err)
	}
	for s, want := range map[string]time.Duration{"5m": 5 * time.Minute, "90": 90 * time.Second, " 1.5 ": 1500 * time.Millisecond, "1h30m": 90 * time.Minute} {
		if got, err := ParseSessionWait("--clamp-wait", s); err != nil || got != want {
			t.Errorf("ParseSessionWait(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"0", "-5m", "soon", "", "1e300"} {
		if _, err := ParseSessionWait("--pack-idle", s); err == nil || !strings.Contains(err.Error(), "--pack-idle") {
			t.Errorf("ParseSessionWait(%q): %v", s, err)
		}
	}
	var zero SessionTiming
	src := &Mooncake{}
	if zero.Apply(src) != Source(src) {
		t.Error("the zero SessionTiming wrapped its source")
	}
}

// A conversation graph is clamped as one timeline: a sub-agent (a session
// of its own) moves with its parent, so the call that joins it still
// comes after it, and after the call that spawned it.
func TestClampKeepsAGraphInOrder(t *testing.T) {
	call := func(i int, agent, node string, at time.Duration, after ...string) Request {
		return Request{Index: i, Offset: at, Session: "c/" + agent, PromptTokens: 5, OutputTokens: 2,
			Graph: &GraphNode{Conversation: "c", Node: node, Agent: agent, After: after}}
	}
	src := &sliceSource{reqs: []Request{
		call(0, "", "p0", 0),
		call(1, "", "p1", 20*time.Minute, "p0"),
		call(2, "s", "s0", 21*time.Minute, "p1"),
		call(3, "s", "s1", 23*time.Minute, "s0"),
		call(4, "", "p2", 24*time.Minute, "p1", "s1"),
	}}
	got := drain(t, SessionTiming{MaxWait: 5 * time.Minute}.Apply(src))
	var order []string
	at := map[string]time.Duration{}
	for _, r := range got {
		order = append(order, r.Graph.Node)
		at[r.Graph.Node] = r.Offset
	}
	if !slices.Equal(order, []string{"p0", "p1", "s0", "s1", "p2"}) {
		t.Fatalf("order %v", order)
	}
	// The 20-minute wait became 5; everything after moved with it.
	if at["p1"] != 5*time.Minute || at["s0"] != 6*time.Minute || at["p2"] != 9*time.Minute {
		t.Errorf("offsets %v", at)
	}
}
