package extproc

import (
	"fmt"
	"sync"
	"testing"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
)

// 10,000 streams open at once over a few HTTP/2 connections, as Envoy's
// worker threads multiplex them: all are open together, each ends with a
// complete record, none is lost or mixed up with another.
func TestTenThousandOpenStreams(t *testing.T) {
	const (
		streams = 10_000
		conns   = 4
		senders = 8
	)
	c := startCollector(t, Config{}, nil)
	envoys := make([]*extproctest.Envoy, conns)
	for i := range envoys {
		envoys[i] = c.envoy()
	}
	all := make([]*extproctest.Stream, streams)
	// each runs f on every stream from a few goroutines, as Envoy's
	// workers do; the first error fails the test.
	each := func(f func(i int, s *extproctest.Stream) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for g := range senders {
			wg.Go(func() {
				for i := g; i < streams; i += senders {
					if err := f(i, all[i]); err != nil {
						errs <- fmt.Errorf("stream %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	each(func(i int, _ *extproctest.Stream) error {
		s, err := envoys[i%conns].Open(t.Context())
		if err != nil {
			return err
		}
		all[i] = s
		if err := s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/completions", Headers: []string{"x-request-id", fmt.Sprint("s", i)}}); err != nil {
			return err
		}
		return s.RequestBody(fmt.Appendf(nil, `{"model":"m","prompt":"request %d","stream":true}`, i), true)
	})
	waitUntil(t, "every stream open at once", func() bool { return c.srv.Stats().Open == streams })
	each(func(i int, s *extproctest.Stream) error {
		if err := s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream"}}); err != nil {
			return err
		}
		return s.ResponseBody(fmt.Appendf(nil, "data: {\"choices\":[{\"text\":\"%d\"}]}\n\n%s", i, doneEvent), true)
	})
	each(func(_ int, s *extproctest.Stream) error { return s.Wait() })

	recs := byID(t, c.stop(false))
	if len(recs) != streams {
		t.Fatalf("%d records, want %d", len(recs), streams)
	}
	for i := range streams {
		r := recs[fmt.Sprint("s", i)]
		if r == nil || r.Aborted || r.Status != 200 || len(r.ChunksUS) != 1 || r.PromptChars != len(fmt.Sprint("request ", i)) {
			t.Fatalf("stream %d: %+v", i, r)
		}
	}
	if st := c.srv.Stats(); st.MessagesDropped != 0 || st.RecordsDropped != 0 || st.ProtocolErrors != 0 || st.QueuedBytes != 0 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
}
