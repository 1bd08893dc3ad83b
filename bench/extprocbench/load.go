package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
)

// The same request and response through both front ends: a streamed chat
// completion whose response has -events content events, each flushed (and
// sent by the stand-in Envoy) on its own, then a usage event and [DONE].

var (
	chatBody = []byte(`{"model":"m","stream":true,"max_tokens":128,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Summarise the plot of a long novel in one paragraph, please, with names."}]}`)
	event    = []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"}}]}\n\n")
)

func tail(events int) []byte {
	return []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":" +
		strconv.Itoa(events) + "}}\n\ndata: [DONE]\n\n")
}

// upstream is the model server behind the reverse proxy: it streams the
// events, flushing each, and in hold mode stops after the first few until
// release is closed (the memory pass).
type upstream struct {
	url     string
	events  int
	hold    atomic.Bool
	release chan struct{}
	open    atomic.Int64 // handlers running
}

func startUpstream(events int) (*upstream, error) {
	u := &upstream{events: events, release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u.url = "http://" + ln.Addr().String()
	end := tail(events)
	go func() {
		_ = (&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.open.Add(1)
			defer u.open.Add(-1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			fl := w.(http.Flusher)
			for i := 0; i < u.events; i++ {
				if i == heldEvents && u.hold.Load() {
					select {
					case <-u.release:
					case <-r.Context().Done():
						return
					}
				}
				_, _ = w.Write(event)
				fl.Flush()
			}
			_, _ = w.Write(end)
		})}).Serve(ln)
	}()
	return u, nil
}

// heldEvents is how many events a stream of the memory pass has sent while
// it is held open.
const heldEvents = 4

// proxyLoad sends n concurrent streamed requests through the proxy at url
// and reads each response whole.
func proxyLoad(url string, n int) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	defer client.CloseIdleConnections()
	return fanOut(n, func(i int) error {
		req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(string(chatBody)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", "p"+strconv.Itoa(i))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "[DONE]\n\n") {
			return fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(b))
		}
		return nil
	})
}

// envoys are the stand-in Envoy's connections: Envoy multiplexes its side
// streams on one HTTP/2 connection per worker thread.
type envoys []*extproctest.Envoy

func dialEnvoys(addr string, conns int) (envoys, error) {
	var es envoys
	for range conns {
		e, err := extproctest.Dial(addr)
		if err != nil {
			es.close()
			return nil, err
		}
		es = append(es, e)
	}
	return es, nil
}

func (es envoys) close() {
	for _, e := range es {
		_ = e.Close()
	}
}

// sendTimes are the times just before each message of a stream was sent:
// request headers, then each content event.
type sendTimes struct {
	headers time.Time
	events  []time.Time
}

// extprocStream plays one request through the ext_proc server as Envoy
// does in observability mode: request headers (with request.time), the
// body, response headers, each event as its own body chunk (gap apart, if
// any), the tail with end_of_stream; then it waits for the collector to
// end the stream. held > 0 stops after that many events until release is
// closed. times, when not nil, gets the send times.
func extprocStream(e *extproctest.Envoy, id string, events int, gap time.Duration, held int, release <-chan struct{}, times *sendTimes) error {
	s, err := e.Open(context.Background())
	if err != nil {
		return err
	}
	now := time.Now()
	if times != nil {
		times.headers = now
		times.events = make([]time.Time, 0, events)
	}
	err = errors.Join(
		s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Time: now, Headers: []string{
			"x-request-id", id, "content-type", "application/json", "x-gateway-destination-endpoint", "10.0.0.1:8000"}}),
		s.RequestBody(chatBody, true),
		s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream"}}),
	)
	if err != nil {
		return err
	}
	next := time.Now()
	for i := 0; i < events; i++ {
		if i == held && held > 0 {
			<-release
		}
		if gap > 0 { // against absolute due times, so sends do not drift
			next = next.Add(gap)
			time.Sleep(time.Until(next))
		}
		if times != nil {
			times.events = append(times.events, time.Now())
		}
		if err := s.ResponseBody(event, false); err != nil {
			return err
		}
	}
	if err := s.ResponseBody(tail(events), true); err != nil {
		return err
	}
	return s.Wait()
}

// extprocLoad plays n streams over es: all at once, or stream i starting
// i*stagger after the first (a steady arrival rate, as real traffic has).
func extprocLoad(es envoys, n, events int, gap, stagger time.Duration, times []sendTimes) error {
	start := time.Now()
	return fanOut(n, func(i int) error {
		time.Sleep(time.Until(start.Add(time.Duration(i) * stagger)))
		var t *sendTimes
		if times != nil {
			t = &times[i]
		}
		return extprocStream(es[i%len(es)], "s"+strconv.Itoa(i), events, gap, 0, nil, t)
	})
}

// fanOut runs f(0..n-1) concurrently, all started together, and returns
// the first error.
func fanOut(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			if err := f(i); err != nil {
				err = fmt.Errorf("stream %d: %w", i, err)
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	close(start)
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}
