package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// silentServer is a target that never answers: it notes when each request
// arrived (by the index in its message) and holds it, sending no headers,
// until the client gives up.
type silentServer struct {
	*httptest.Server
	mu      sync.Mutex
	arrived map[int]time.Time
}

func newSilentServer(t *testing.T) *silentServer {
	s := &silentServer{arrived: map[int]time.Time{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var body struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil || len(body.Messages) != 1 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		i, _ := strconv.Atoi(body.Messages[0].Content)
		s.mu.Lock()
		s.arrived[i] = at
		s.mu.Unlock()
		<-r.Context().Done()
	}))
	t.Cleanup(s.Close)
	return s
}

// arrival is when request i reached the server, as an offset from the
// run's origin (both readings are monotonic, in this process).
func (s *silentServer) arrival(t *testing.T, run *engine.Run, i int) time.Duration {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.arrived[i]
	if !ok {
		t.Fatalf("request %d never reached the server", i)
	}
	return at.Sub(run.Start)
}

// indexBodies sends each request's index as its only message.
type indexBodies struct{}

var _ engine.BodyBuilder = indexBodies{}

func (indexBodies) Body(req *workload.Request, _ string) ([]byte, error) {
	return fmt.Appendf(nil, `{"model":"m","stream":true,"max_tokens":1,"messages":[{"role":"user","content":"%d"}]}`, req.Index), nil
}

// requests yields streamed chat requests at the given offsets.
type requests struct {
	offsets []time.Duration
	i       int
}

func (r *requests) Next() (workload.Request, error) {
	if r.i >= len(r.offsets) {
		return workload.Request{}, io.EOF
	}
	r.i++
	return workload.Request{Index: r.i - 1, Offset: r.offsets[r.i-1], Endpoint: openai.Chat, Stream: true, OutputTokens: 1}, nil
}

// TestFailedRequestsKeepTheirSendTime: a request that went out and then
// timed out, or was cancelled by the drain bound, was sent when it was
// handed to the transport (issue 16: its Sent was moved to its failure,
// so the target's silence read as send lag and the run was flagged
// degraded, blaming the client for the target's overload).
func TestFailedRequestsKeepTheirSendTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  engine.Config
		err  string // the start of every Result.Err
	}{
		{"timeout", engine.Config{Profile: engine.ProfileTrace, Timeout: 2 * time.Second}, "timeout: "},
		{"drain", engine.Config{Profile: engine.ProfileTrace, Drain: 2 * time.Second}, "cancelled: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSilentServer(t)
			cfg := tc.cfg
			cfg.Target = srv.URL
			run, err := engine.Execute(context.Background(), cfg, &requests{offsets: []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond}}, indexBodies{})
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Results) != 3 {
				t.Fatalf("%d results, want 3", len(run.Results))
			}
			var bound time.Duration // the most any request's send lag may be: arrival − intended
			for i := range run.Results {
				r := &run.Results[i]
				arrived := srv.arrival(t, run, r.Index)
				if !strings.HasPrefix(r.Err, tc.err) {
					t.Errorf("request %d: err %q, want %q…", r.Index, r.Err, tc.err)
				}
				// Sent is read before the hand-off, so it precedes the
				// server's arrival; the failure came after it.
				if r.Sent > arrived || r.End <= arrived {
					t.Errorf("request %d: sent %v, end %v; the server had it at %v", r.Index, r.Sent, r.End, arrived)
				}
				bound = max(bound, arrived-r.Intended)
			}
			// Every request's lag is below bound, its wait for the target
			// far above it: a threshold just over bound tells them apart.
			m := stats.Summarize(run.Results, stats.Options{LagThreshold: bound + time.Millisecond})
			if limit := float64(bound+time.Millisecond) / float64(time.Millisecond); m.Degraded || m.SendLag.Max > limit || m.ClientLag.Max > limit {
				t.Errorf("degraded %v, send lag max %v ms, client lag max %v ms: the wait for the target (%v) counts as lag (limit %v ms)",
					m.Degraded, m.SendLag.Max, m.ClientLag.Max, cfg.Timeout+cfg.Drain, limit)
			}
		})
	}
}

// failingBodies cannot build any body.
type failingBodies struct{}

func (failingBodies) Body(*workload.Request, string) ([]byte, error) {
	return nil, fmt.Errorf("no tokenizer")
}

// TestUnbuiltRequestIsSentWhenItFailed: a request whose body could not be
// built never went out; its Sent is the moment it failed, and End equals it.
func TestUnbuiltRequestIsSentWhenItFailed(t *testing.T) {
	srv := newSilentServer(t)
	run, err := engine.Execute(context.Background(), engine.Config{Target: srv.URL, Profile: engine.ProfileSynchronous},
		&requests{offsets: []time.Duration{0}}, failingBodies{})
	if err != nil {
		t.Fatal(err)
	}
	r := run.Results[0]
	if !strings.HasPrefix(r.Err, "building request: ") || r.Sent != r.End || r.Sent < r.Intended {
		t.Errorf("result %+v: want a build error with sent = end ≥ intended", r)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.arrived) != 0 {
		t.Errorf("the server saw %d requests", len(srv.arrived))
	}
}

// TestBackwardsRowsOverRealServer: against a real target, a row due before
// one already sent goes out once reached, and its order wait is the gap
// between the two due times, whatever the machine's timing.
func TestBackwardsRowsOverRealServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	run, err := engine.Execute(context.Background(), engine.Config{Target: srv.URL, Profile: engine.ProfileTrace},
		&requests{offsets: []time.Duration{0, 60 * time.Millisecond, 10 * time.Millisecond}}, indexBodies{})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 0, 50 * time.Millisecond}
	for i, r := range run.Results {
		if !r.OK() || r.OrderWait != want[i] || r.Sent-r.Intended < r.OrderWait {
			t.Errorf("request %d: ok %v, intended %v, sent %v, order wait %v (want %v)", i, r.OK(), r.Intended, r.Sent, r.OrderWait, want[i])
		}
	}
}
