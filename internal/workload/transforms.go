package workload

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
)

// Transforms are the changes a replay makes to a workload. Apply applies
// them in this fixed order, each to the output of the one before:
//
//  1. window     keep offsets in [WindowStart, WindowEnd), shifted so WindowStart is 0
//  2. filter     keep requests matching Models, Paths and Statuses
//  3. sample     keep a seeded Fraction of requests (whole sessions)
//  4. clamp      cut waits inside a session longer than SessionTiming.MaxWait
//  5. pack       cut idle gaps before a new session longer than SessionTiming.MaxIdle
//  6. time-scale multiply offsets and delays by TimeScale
//  7. rate       rescale offsets so the mean rate is Rate (a first pass counts)
//  8. loop       play the result Loop times, each pass after the previous one
//  9. cap        MaxPromptTokens, MaxOutputTokens
//
// 10. model map  rename models by ModelMap
// 11. shard      keep shard ShardIndex of ShardCount (whole sessions), offsets unchanged
//
// The order is chosen so that each step means what its flag says: the
// window and filters speak of the recording as it is; the rate is the rate
// of what is left after selection; a loop repeats the rescaled trace; caps
// and model names change what is sent, never what is selected; and the
// shard is last so that N replayers computing everything before it from
// the same trace and flags agree on every offset and split one stream.
//
// The zero value changes nothing.
type Transforms struct {
	// WindowStart and WindowEnd select requests by their offset in the
	// source: WindowStart <= offset < WindowEnd (WindowEnd 0: to the end).
	// Kept offsets are shifted down by WindowStart.
	WindowStart, WindowEnd time.Duration
	// Models keeps requests whose model (Model, or TraceModel, the model a
	// public trace names) matches one of these path.Match patterns.
	Models []string
	// Paths keeps requests whose recorded path (a capture's; else the
	// OpenAI path of the endpoint) matches one of these path.Match patterns.
	Paths []string
	// Statuses keeps requests by the status production answered with (only
	// captures record one): a code ("200"), a class ("5xx"), "error" (not
	// 2xx, or an error recorded) or "aborted"; a leading "!" excludes
	// instead. Without an including term every status not excluded is kept.
	Statuses []string
	// Fraction keeps a seeded sample of this share of requests, in (0, 1];
	// 0 means 1. Sessions are kept or dropped whole.
	Fraction float64
	// Seed seeds the sample.
	Seed uint64
	// SessionTiming clamps waits inside sessions and packs idle gaps
	// between them (sessiontiming.go), before the time scale.
	SessionTiming SessionTiming
	// TimeScale multiplies offsets and think-time delays (0.5 replays twice
	// as fast); 0 means 1.
	TimeScale float64
	// Rate, when positive, rescales offsets so the mean rate — requests
	// divided by the last offset, after steps 1 to 4 — is Rate requests per
	// second, keeping the shape of every burst. Measuring the mean takes a
	// first pass over the source, which Apply opens twice.
	Rate float64
	// Loop plays the workload this many times (0 means 1): each pass
	// starts one mean inter-arrival gap after the previous pass's last
	// offset, with its own indices, ids, sessions and prefix-block ids, so
	// a prefix cache warmed by one pass is no more useful to the next than
	// it was within the recording. Verbatim prompts repeat as they are.
	Loop int
	// MaxPromptTokens caps synthesised prompt lengths (0: no cap), cutting
	// prefix-block id lists to the blocks that remain, so requests still
	// share exactly the leading blocks they shared before. Verbatim prompts
	// are sent as they are and counted in Warnings.
	MaxPromptTokens int
	// MaxOutputTokens caps forced output lengths, and forces it where the
	// workload left the length to the server (0: no cap).
	MaxOutputTokens int
	// ModelMap renames models: a request's Model, or when it has none its
	// TraceModel, is replaced by ModelMap[name], or by ModelMap["*"] for
	// names not listed.
	ModelMap map[string]string
	// ShardIndex and ShardCount keep every ShardCount-th request starting
	// at the ShardIndex-th (0-based), whole sessions by a hash of their key;
	// ShardCount 0 means no sharding. Offsets are kept, so N replayers
	// started together send their shares at the original times.
	ShardIndex, ShardCount int
}

// Validate reports every problem at once, naming the flags.
func (t *Transforms) Validate() error {
	var errs []error
	if t.WindowStart < 0 || t.WindowEnd < 0 || (t.WindowEnd > 0 && t.WindowEnd <= t.WindowStart) {
		errs = append(errs, fieldErr("Window", fmt.Sprintf("%v:%v", t.WindowStart, t.WindowEnd), "want 0 <= start < end"))
	}
	for _, p := range append(append([]string(nil), t.Models...), t.Paths...) {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("filter pattern %q: %w", p, err))
		}
	}
	for _, s := range t.Statuses {
		if _, err := parseStatusTerm(s); err != nil {
			errs = append(errs, err)
		}
	}
	if !(t.Fraction >= 0 && t.Fraction <= 1) {
		errs = append(errs, fieldErr("Fraction", fmt.Sprint(t.Fraction), "want a fraction in (0, 1]"))
	}
	if !(t.TimeScale >= 0) || math.IsInf(t.TimeScale, 0) {
		errs = append(errs, fieldErr("TimeScale", fmt.Sprint(t.TimeScale), "must be positive"))
	}
	if !(t.Rate >= 0) || math.IsInf(t.Rate, 0) {
		errs = append(errs, fieldErr("Rate", fmt.Sprint(t.Rate), "must be positive"))
	}
	if err := t.SessionTiming.Validate(); err != nil {
		errs = append(errs, err)
	}
	if t.Rate > 0 && t.TimeScale != 0 && t.TimeScale != 1 {
		errs = append(errs, fieldErr("Rate", fmt.Sprint(t.Rate), "with a time scale: a rescale to a mean rate replaces any time scale; give one of them"))
	}
	if t.Loop < 0 {
		errs = append(errs, fieldErr("Loop", fmt.Sprint(t.Loop), "must not be negative"))
	}
	if t.MaxPromptTokens < 0 || t.MaxOutputTokens < 0 {
		errs = append(errs, fieldErr("MaxPromptTokens", fmt.Sprintf("%d (MaxOutputTokens %d)", t.MaxPromptTokens, t.MaxOutputTokens), "must not be negative"))
	}
	if t.ShardCount < 0 || (t.ShardCount > 0 && (t.ShardIndex < 0 || t.ShardIndex >= t.ShardCount)) ||
		(t.ShardCount == 0 && t.ShardIndex != 0) {
		errs = append(errs, fieldErr("Shard", fmt.Sprintf("%d/%d", t.ShardIndex, t.ShardCount), "want i/N with 0 <= i < N (shards are numbered from 0)"))
	}
	return errors.Join(errs...)
}

// Apply opens the source with open and returns it transformed. open is
// called once more for a Rate (the first pass that measures the mean) and
// once per extra Loop pass: a source is streamed, never held in memory,
// so open must return the same requests each time.
func (t Transforms) Apply(open func() (Source, error)) (Source, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	// Steps 1 to 4, reopenable.
	selected := func() (Source, error) {
		src, err := open()
		if err != nil {
			return nil, err
		}
		return t.selectAndScale(src), nil
	}
	// Step 7.
	pass := selected
	if t.Rate > 0 {
		f, err := rescaleFactor(selected, t.Rate)
		if err != nil {
			return nil, err
		}
		pass = func() (Source, error) {
			src, err := selected()
			if err != nil {
				return nil, err
			}
			return TimeScale(src, f), nil
		}
	}
	// Step 8.
	src, err := pass()
	if err != nil {
		return nil, err
	}
	if t.Loop > 1 {
		src = newLooped(src, pass, t.Loop)
	}
	// Steps 9 to 11.
	if t.MaxPromptTokens > 0 || t.MaxOutputTokens > 0 {
		src = newCapped(src, t.MaxPromptTokens, t.MaxOutputTokens)
	}
	if len(t.ModelMap) > 0 {
		src = mapModels(src, t.ModelMap)
	}
	if t.ShardCount > 1 {
		src = newSharded(src, t.ShardIndex, t.ShardCount)
	}
	return src, nil
}

// selectAndScale applies steps 1 to 6.
func (t *Transforms) selectAndScale(src Source) Source {
	if t.WindowStart > 0 || t.WindowEnd > 0 {
		src = newWindow(src, t.WindowStart, t.WindowEnd)
	}
	if len(t.Models) > 0 || len(t.Paths) > 0 || len(t.Statuses) > 0 {
		src = newFiltered(src, t.Models, t.Paths, t.Statuses)
	}
	if t.Fraction > 0 && t.Fraction < 1 {
		src = newSampled(src, t.Fraction, t.Seed)
	}
	if t.SessionTiming.Active() {
		src = t.SessionTiming.Apply(src)
	}
	if t.TimeScale > 0 && t.TimeScale != 1 {
		src = TimeScale(src, t.TimeScale)
	}
	return src
}

// OpenTransformed opens spec with opts and applies t (see Transforms.Apply).
func OpenTransformed(spec string, opts OpenOptions, t Transforms) (Source, error) {
	return t.Apply(func() (Source, error) { return Open(spec, opts) })
}

// ParseWindow parses "START:END" (either side may be empty): Go durations
// ("10m", "1h30m") or plain seconds ("600").
func ParseWindow(s string) (start, end time.Duration, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fieldErr("Window", fmt.Sprintf("%q", s), "want START:END, e.g. 10m:20m (either side may be empty)")
	}
	if start, err = parseOffset(a); err == nil {
		end, err = parseOffset(b)
	}
	if err != nil {
		return 0, 0, fieldErr("Window", fmt.Sprintf("%q", s), err.Error())
	}
	if end > 0 && end <= start {
		return 0, 0, fieldErr("Window", fmt.Sprintf("%q", s), "the end must come after the start")
	}
	return start, end, nil
}

func parseOffset(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f >= 0 && f < math.MaxInt64/float64(time.Second)) {
			return 0, fmt.Errorf("%q: want a duration >= 0", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration >= 0 like 90s, 10m or 1h", s)
	}
	return d, nil
}

// ParseShard parses "i/N", 0 <= i < N.
func ParseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			n, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fieldErr("Shard", fmt.Sprintf("%q", s), "want i/N with 0 <= i < N, e.g. 0/4 … 3/4 (shards are numbered from 0)")
	}
	return i, n, nil
}

// ParseModelMap parses "from=to" entries, each possibly a comma-separated
// list; from "*" matches every model not listed.
func ParseModelMap(entries []string) (map[string]string, error) {
	m := map[string]string{}
	var errs []error
	for _, e := range entries {
		for _, kv := range strings.Split(e, ",") {
			from, to, ok := strings.Cut(kv, "=")
			from, to = strings.TrimSpace(from), strings.TrimSpace(to)
			if !ok || from == "" || to == "" {
				errs = append(errs, fieldErr("ModelMap", fmt.Sprintf("%q", kv), "want from=to"))
				continue
			}
			if prev, dup := m[from]; dup && prev != to {
				errs = append(errs, fieldErr("ModelMap", "", fmt.Sprintf("%q maps to both %q and %q", from, prev, to)))
			}
			m[from] = to
		}
	}
	return m, errors.Join(errs...)
}

// FieldError is a problem with one setting of the transforms (or another
// workload option), named by its field; a command line maps the field to
// its flag.
type FieldError struct {
	Field, Value, Msg string
}

func fieldErr(field, value, msg string) error { return &FieldError{field, value, msg} }

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Msg
	}
	return e.Field + " " + e.Value + ": " + e.Msg
}

// FieldParts names the field, the value and the problem.
func (e *FieldError) FieldParts() (field, value, msg string) { return e.Field, e.Value, e.Msg }
