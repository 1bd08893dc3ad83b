package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The shards of a split run start at one instant. With Plan.StartAt the
// caller names it; with Plan.StartBarrier the shards agree on it through
// a directory they share (a volume every pod of an Indexed Job mounts,
// where their results go anyway): each writes a ready file holding its
// ready time and the plan's fingerprint, waits until all Count files are
// there, and starts at the latest ready time plus BarrierLead. Every shard
// reads the same files, so every shard computes the same instant; the
// lead covers the time the last one takes to see the last file. A shard
// refuses to start when its clock is visibly off (clockCheck).

// DefaultBarrierLead is the time between the last shard's ready time and
// the start.
const DefaultBarrierLead = 10 * time.Second

// barrierTimeout bounds the wait for the other shards.
const barrierTimeout = 15 * time.Minute

// readyFile is one shard's entry in the barrier directory.
type readyFile struct {
	Index int       `json:"index"`
	Count int       `json:"count"`
	Plan  string    `json:"plan"`
	RunID string    `json:"run_id,omitempty"`
	Ready time.Time `json:"ready"`
	Host  string    `json:"host,omitempty"`
}

// barrierStart writes this shard's ready file and returns the instant
// every shard computes once all are ready.
func (r *Runner) barrierStart(ctx context.Context, now func() time.Time) (time.Time, error) {
	dir, s := r.plan.StartBarrier, r.plan.Shard
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return time.Time{}, &FieldError{Field: "StartBarrier", Value: dir, Err: err}
	}
	host, _ := os.Hostname()
	me := readyFile{Index: s.Index, Count: s.Count, Plan: r.plan.Fingerprint(), RunID: r.plan.RunID, Ready: now().UTC(), Host: host}
	b, _ := json.Marshal(me)
	name := filepath.Join(dir, fmt.Sprintf("ready-%d-of-%d.json", s.Index, s.Count))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return time.Time{}, &FieldError{Field: "StartBarrier", Value: dir, Err: err}
	}
	if err := os.Rename(tmp, name); err != nil {
		return time.Time{}, &FieldError{Field: "StartBarrier", Value: dir, Err: err}
	}
	lead := r.plan.BarrierLead
	if lead <= 0 {
		lead = DefaultBarrierLead
	}
	deadline := now().Add(barrierTimeout)
	for {
		latest, missing, err := readBarrier(dir, me)
		if err != nil {
			return time.Time{}, err
		}
		if len(missing) == 0 {
			return latest.Add(lead), nil
		}
		if now().After(deadline) {
			return time.Time{}, fmt.Errorf("start barrier %s: shards %s not ready after %v", dir, strings.Join(missing, ", "), barrierTimeout)
		}
		sleepCtx(ctx, 200*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
	}
}

// readBarrier reads every ready file of the run in dir: the latest ready
// time, and the shards still missing. A ready file of another plan or
// another shard count in the directory is an error naming it.
func readBarrier(dir string, me readyFile) (time.Time, []string, error) {
	latest := me.Ready
	var missing []string
	for i := range me.Count {
		path := filepath.Join(dir, fmt.Sprintf("ready-%d-of-%d.json", i, me.Count))
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, fmt.Sprintf("%d/%d", i, me.Count))
			continue
		}
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("start barrier: %w", err)
		}
		var f readyFile
		if err := json.Unmarshal(b, &f); err != nil {
			return time.Time{}, nil, fmt.Errorf("start barrier: %s: %w", path, err)
		}
		if f.RunID != me.RunID {
			return time.Time{}, nil, fmt.Errorf("start barrier: %s is of run %q, this shard's is %q: each run needs a barrier directory of its own (or clear this one)", path, f.RunID, me.RunID)
		}
		if f.Plan != me.Plan || f.Count != me.Count || f.Index != i {
			return time.Time{}, nil, fmt.Errorf("start barrier: %s is shard %d/%d of plan %s, this shard's plan is %s: each run needs a barrier directory of its own",
				path, f.Index, f.Count, f.Plan, me.Plan)
		}
		if f.Ready.Before(me.Ready.Add(-barrierTimeout)) {
			return time.Time{}, nil, fmt.Errorf("start barrier: %s was written at %s, %v before this shard was ready: it is an earlier run's; give each run a barrier directory of its own (or clear this one)",
				path, f.Ready.Format(time.RFC3339), me.Ready.Sub(f.Ready).Round(time.Second))
		}
		if f.Ready.After(latest) {
			latest = f.Ready
		}
	}
	return latest, missing, nil
}

// maxClockOffset is how far a shard's clock may be from the target's
// (beyond the Date header's one-second resolution and half the round
// trip) before the shard refuses to start: shards that do not share a
// clock would not start together.
const maxClockOffset = 500 * time.Millisecond

// clockCheck compares this host's clock with the target's Date header:
// the server's time at its answer lies in [Date, Date + 1 s), the
// answer arrived within the round trip. It returns the offset's estimate
// (local − server, seconds) and, when the clock is off by more than
// maxClockOffset beyond those bounds, an error. ok is false when the
// target sent no Date header (nothing to compare with).
func clockCheck(ctx context.Context, target string, header http.Header, client *http.Client) (offset float64, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(target, "/")+"/v1/models", nil)
	if err != nil {
		return 0, false, nil
	}
	for k, v := range header {
		req.Header[k] = v
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	t1 := time.Now()
	if err != nil {
		return 0, false, nil // reachability is checked apart
	}
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, false, nil
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	server := date.Add(500 * time.Millisecond) // the middle of the second the Date names
	off := mid.Sub(server)
	bound := 500*time.Millisecond + t1.Sub(t0)/2 + maxClockOffset
	if off > bound || off < -bound {
		return off.Seconds(), true, fmt.Errorf("this host's clock is %.1fs off the target's (its Date header says %s; the bound is ±%.1fs): the shards would not start together; sync the node's clock (NTP) and start again",
			off.Seconds(), date.UTC().Format(time.RFC1123), bound.Seconds())
	}
	return off.Seconds(), true, nil
}
