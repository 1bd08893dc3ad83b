package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	controlv1 "github.com/reprise-llm/reprise/api/reprise/control/v1"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// env is the whole admin stack over real listeners: the simulator as the
// upstream, the capturing proxy in front of it writing a real capture, and
// the control API with the probes on one admin http.Server that speaks
// HTTP/1 and cleartext HTTP/2, exactly as proxycli mounts it.
type env struct {
	t        *testing.T
	token    string
	upstream string // the simulator's URL
	proxy    *proxy.Proxy
	proxyURL string
	proxySrv *httptest.Server
	writer   *capture.Writer
	dir      string
	hub      *Hub
	ctl      *Server
	admin    *http.Server
	adminURL string
	client   *http.Client
	conn     *grpc.ClientConn
	rpc      controlv1.ControlClient
}

func newEnv(t *testing.T, token string, tailBuffer int) *env {
	t.Helper()
	upstream, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.ITLBase, c.ITLPerSeq, c.PrefillPerToken = time.Millisecond, 100*time.Microsecond, 0, 0
	})
	e := &env{t: t, token: token, upstream: upstream, dir: filepath.Join(t.TempDir(), "capture")}
	start := time.Now()
	var err error
	e.writer, err = capture.NewWriter(e.dir, capture.WriterOptions{
		Manifest: capture.Manifest{Start: start, Source: "control test", Content: capture.ContentHashed},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.hub = NewHub(tailBuffer)
	e.proxy, err = proxy.New(proxy.Config{Upstream: e.upstream}, e.hub.Tee(e.writer), capture.NewHasher(nil, capture.DefaultBlockChars), start, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.proxySrv = httptest.NewServer(e.proxy)
	e.proxyURL = e.proxySrv.URL
	e.ctl, err = NewServer(e.proxy, e.writer, e.hub, Options{
		Version: "v0.0.0-test", Start: start, Upstream: e.upstream,
		CaptureContent: capture.ContentHashed, Token: token,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = &http.Server{Handler: e.ctl.Handler(e.proxy.AdminHandler(e.writer, token)), Protocols: Protocols(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.admin.Serve(ln) }()
	e.adminURL = "http://" + ln.Addr().String()
	e.client = &http.Client{Transport: &http.Transport{}}
	e.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.rpc = controlv1.NewControlClient(e.conn)
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	_ = e.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.ctl.Close(ctx)
	if err := e.admin.Shutdown(ctx); err != nil {
		e.t.Errorf("admin shutdown: %v", err)
	}
	e.proxySrv.Close()
	e.proxy.Wait()
	if err := e.writer.Close(); err != nil {
		e.t.Errorf("closing the capture: %v", err)
	}
	e.client.CloseIdleConnections()
	// The simulator closes after this: simtest registered its cleanup first.
}

// ctx returns a context carrying the bearer token as gRPC metadata.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	e.t.Cleanup(cancel)
	if e.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.token)
}

// chat sends one streamed chat completion through the proxy with the given
// X-Request-Id and reads the whole response.
func (e *env) chat(requestID string) {
	e.t.Helper()
	body := `{"model":"tiny","stream":true,"stream_options":{"include_usage":true},"max_tokens":4,"ignore_eos":true,` +
		`"messages":[{"role":"user","content":"the prompt text must never reach the control API"}]}`
	req, _ := http.NewRequest("POST", e.proxyURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", requestID)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("request %s: %v", requestID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "[DONE]") {
		e.t.Fatalf("request %s: %d %v %.200q", requestID, resp.StatusCode, err, b)
	}
}

// rest does an HTTP/1 request to the admin listener and returns status and body.
func (e *env) rest(method, path, token string) (int, string) {
	e.t.Helper()
	code, _, body := e.restHeader(method, path, token)
	return code, body
}

func (e *env) restHeader(method, path, token string) (int, http.Header, string) {
	e.t.Helper()
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("{}")
	}
	req, _ := http.NewRequest(method, e.adminURL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestStatusAndStats(t *testing.T) {
	e := newEnv(t, "s3cret", 0)
	for i := range 3 {
		e.chat(fmt.Sprintf("req-%d", i))
	}
	e.proxy.Wait()

	st, err := e.rpc.Status(e.ctx(), &controlv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "v0.0.0-test" || st.Upstream != e.upstream || st.CaptureDir != e.dir || st.CaptureContent != "hashed" ||
		st.CaptureState != controlv1.CaptureState_CAPTURE_STATE_HEALTHY || st.LastError != "" || st.InFlight != 0 {
		t.Errorf("status %v", st)
	}
	if st.UptimeNs <= 0 || st.StartTime.AsTime().After(time.Now()) {
		t.Errorf("uptime %d start %v", st.UptimeNs, st.StartTime.AsTime())
	}

	// Rotate first: it stores every queued record, so the writer's counters
	// are final.
	if _, err := e.rpc.Rotate(e.ctx(), &controlv1.RotateRequest{}); err != nil {
		t.Fatal(err)
	}
	stats, err := e.rpc.Stats(e.ctx(), &controlv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requests != 3 || stats.Recorded != 3 || stats.Dropped != 0 || stats.InFlight != 0 || stats.Aborted != 0 ||
		stats.UpstreamErrors != 0 || stats.WriterWritten != 3 || stats.Segments != 1 || stats.Bytes <= 0 {
		t.Errorf("stats %v", stats)
	}
	if fi, err := os.Stat(filepath.Join(e.dir, "seg-000001.jsonl.zst")); err != nil || fi.Size() != stats.Bytes {
		t.Errorf("segment on disk: %v (size vs stats bytes %d)", err, stats.Bytes)
	}

	// The JSON mapping answers the same, with the proto field names.
	code, body := e.rest("GET", "/v1/stats", "s3cret")
	if code != 200 {
		t.Fatalf("GET /v1/stats: %d %s", code, body)
	}
	var viaREST controlv1.StatsResponse
	if err := protojson.Unmarshal([]byte(body), &viaREST); err != nil {
		t.Fatalf("GET /v1/stats body %s: %v", body, err)
	}
	if viaREST.Requests != 3 || viaREST.WriterWritten != 3 || viaREST.Bytes != stats.Bytes || !strings.Contains(body, `"writer_written":"3"`) {
		t.Errorf("GET /v1/stats: %s", body)
	}
	code, body = e.rest("GET", "/v1/status", "s3cret")
	if code != 200 || !strings.Contains(body, `"capture_state":"CAPTURE_STATE_HEALTHY"`) || !strings.Contains(body, `"upstream":"`+e.upstream+`"`) {
		t.Errorf("GET /v1/status: %d %s", code, body)
	}
	// The probes are still served by the same listener.
	if code, body := e.rest("GET", "/readyz", ""); code != 200 {
		t.Errorf("readyz %d %s", code, body)
	}
}

// segmentIDs reads the request ids stored in one finished segment.
func segmentIDs(t *testing.T, path string) []string {
	t.Helper()
	var ids []string
	for _, rec := range capturetest.Read(t, path) {
		ids = append(ids, rec.RequestID)
	}
	return ids
}

func TestRotateFinishesSegments(t *testing.T) {
	e := newEnv(t, "", 0)
	e.chat("a1")
	e.chat("a2")
	e.proxy.Wait()
	code, body := e.rest("POST", "/v1/rotate", "")
	if code != 200 || !strings.Contains(body, `"segments":"1"`) {
		t.Fatalf("POST /v1/rotate: %d %s", code, body)
	}
	first := filepath.Join(e.dir, "seg-000001.jsonl.zst")
	if got := segmentIDs(t, first); strings.Join(got, ",") != "a1,a2" {
		t.Errorf("segment 1 holds %v, want a1,a2", got)
	}

	e.chat("b1")
	e.proxy.Wait()
	resp, err := e.rpc.Rotate(e.ctx(), &controlv1.RotateRequest{})
	if err != nil || resp.Segments != 2 {
		t.Fatalf("rotate over gRPC: %v %v", resp, err)
	}
	if got := segmentIDs(t, filepath.Join(e.dir, "seg-000002.jsonl.zst")); strings.Join(got, ",") != "b1" {
		t.Errorf("segment 2 holds %v, want b1", got)
	}
	// Nothing arrived since: rotating again finishes no segment.
	if resp, err := e.rpc.Rotate(e.ctx(), &controlv1.RotateRequest{}); err != nil || resp.Segments != 2 {
		t.Errorf("idle rotate: %v %v", resp, err)
	}
	if partial, _ := filepath.Glob(filepath.Join(e.dir, "*.partial.*")); len(partial) != 0 {
		t.Errorf("unfinished segments after rotate: %v", partial)
	}
}

func TestRotateAfterCloseIsUnavailable(t *testing.T) {
	e := newEnv(t, "", 0)
	if err := e.writer.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.rpc.Rotate(e.ctx(), &controlv1.RotateRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("rotate on a closed writer: %v, want Unavailable", err)
	}
	if code, body := e.rest("POST", "/v1/rotate", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "closed") {
		t.Errorf("POST /v1/rotate on a closed writer: %d %s", code, body)
	}
}

func TestTailRecords(t *testing.T) {
	// Registered first, so it runs after env's cleanup has closed everything.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	e := newEnv(t, "tok", 0)
	e.chat("before") // finished before anyone tails: never sent
	e.proxy.Wait()

	ctx, cancel := context.WithCancel(e.ctx())
	stream, err := e.rpc.TailRecords(ctx, &controlv1.TailRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil { // subscribed
		t.Fatal(err)
	}
	want := []string{"t1", "t2", "t3"}
	for _, id := range want {
		e.chat(id)
	}
	for _, id := range want {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv %s: %v", id, err)
		}
		r := msg.Record
		if r.RequestId != id || r.Path != "/v1/chat/completions" || r.Model != "tiny" || r.Status != 200 || msg.Missed != 0 ||
			r.Id == "" || r.Shadow || r.Aborted || r.PromptTokens <= 0 || r.OutputTokens != 4 || r.TtftNs <= 0 || r.E2ENs < r.TtftNs || r.T <= 0 {
			t.Errorf("record %s: %v (missed %d)", id, r, msg.Missed)
		}
		if b, _ := protojson.Marshal(msg); strings.Contains(string(b), "prompt text") {
			t.Errorf("tail message carries prompt text: %s", b)
		}
	}
	st, err := e.rpc.Status(e.ctx(), &controlv1.StatusRequest{})
	if err != nil || st.TailSubscribers != 1 {
		t.Errorf("status while tailing: %v %v", st, err)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("recv after cancel: %v", err)
	}
	// The server notices the cancel and unsubscribes.
	for e.hub.Stats().Subscribers != 0 {
		time.Sleep(time.Millisecond)
	}

	// A tail open when the proxy stops ends cleanly.
	stream, err = e.rpc.TailRecords(e.ctx(), &controlv1.TailRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	e.hub.Close()
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("recv after the hub closed: %v, want EOF", err)
	}
}

func TestTokenRequired(t *testing.T) {
	e := newEnv(t, "s3cret", 0)
	bare := context.Background()
	wrong := metadata.AppendToOutgoingContext(bare, "authorization", "Bearer nope")
	for name, ctx := range map[string]context.Context{"no token": bare, "wrong token": wrong} {
		if _, err := e.rpc.Status(ctx, &controlv1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Status: %v", name, err)
		}
		if _, err := e.rpc.Rotate(ctx, &controlv1.RotateRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Rotate: %v", name, err)
		}
		stream, err := e.rpc.TailRecords(ctx, &controlv1.TailRecordsRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: TailRecords: %v", name, err)
		}
	}
	if e.hub.Stats().Subscribers != 0 {
		t.Errorf("an unauthenticated tail subscribed")
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/status"}, {"GET", "/v1/stats"}, {"POST", "/v1/rotate"}} {
		for _, tok := range []string{"", "nope"} {
			code, h, body := e.restHeader(c.method, c.path, tok)
			if code != http.StatusUnauthorized || !strings.Contains(body, `"code":16`) || !strings.Contains(body, "bearer token") ||
				h.Get("WWW-Authenticate") != `Bearer realm="reprise admin"` || h.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s with token %q: %d %v %s", c.method, c.path, tok, code, h, body)
			}
		}
		if code, body := e.rest(c.method, c.path, "s3cret"); code != 200 {
			t.Errorf("%s %s with the token: %d %s", c.method, c.path, code, body)
		}
	}
	if st := e.writer.Stats(); st.Segments != 0 {
		t.Errorf("rotate without the token did something: %v", st)
	}
	// The probes stay open, /metrics keeps its own check.
	if code, _ := e.rest("GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := e.rest("GET", "/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("metrics without the token: %d", code)
	}
	if code, _ := e.rest("GET", "/v1/nope", "s3cret"); code != http.StatusNotFound {
		t.Errorf("unknown /v1 path: %d", code)
	}
	if code, body := e.rest("GET", "/v1/rotate", "s3cret"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "GET /v1/rotate: method not allowed") {
		t.Errorf("GET /v1/rotate: %d %s", code, body)
	}
}

// A tail client that stops reading never slows the proxy: its records are
// dropped and counted, and it learns how many it missed.
func TestSlowTailSubscriberDrops(t *testing.T) {
	const buffer, n = 4, 30
	e := newEnv(t, "", buffer)
	// A subscriber that reads nothing until the end...
	stuck := e.hub.Subscribe(false)
	defer stuck.Close()
	// ...and a gRPC client that opens a tail and never calls Recv.
	ctx, cancel := context.WithCancel(e.ctx())
	defer cancel()
	stream, err := e.rpc.TailRecords(ctx, &controlv1.TailRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e.chat(fmt.Sprintf("r%d", i)) // each returns: Publish did not block
	}
	e.proxy.Wait()

	stats, err := e.rpc.Stats(e.ctx(), &controlv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requests != n || stats.Recorded != n || stats.Dropped != 0 {
		t.Errorf("proxy counters with slow tails: %v", stats)
	}
	// Two subscribers saw n records each; the stuck one kept buffer of them.
	if got := stats.TailPublished + stats.TailDropped; got != 2*n {
		t.Errorf("published %d + dropped %d = %d, want %d", stats.TailPublished, stats.TailDropped, got, 2*n)
	}
	if stats.TailDropped < n-buffer {
		t.Errorf("tail dropped %d, want at least %d (the stuck subscriber's)", stats.TailDropped, n-buffer)
	}
	for i := range buffer {
		if rec := <-stuck.ch; rec.requestID != fmt.Sprintf("r%d", i) || rec.missed != 0 {
			t.Errorf("buffered record %d: %s missed %d", i, rec.requestID, rec.missed)
		}
	}
	e.chat("last")
	if rec := <-stuck.ch; rec.requestID != "last" || rec.missed != n-buffer {
		t.Errorf("after catching up: %s missed %d, want last missed %d", rec.requestID, rec.missed, n-buffer)
	}
}

// grpcurl-style discovery: server reflection lists the service, behind the token.
func TestReflection(t *testing.T) {
	e := newEnv(t, "s3cret", 0)
	list := func(ctx context.Context) ([]string, error) {
		stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		// A stream the server has already ended (Unauthenticated) makes
		// Send return io.EOF; its status comes from Recv, as gRPC documents.
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		_ = stream.CloseSend()
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		return names, nil
	}
	names, err := list(e.ctx())
	if err != nil || !slices.Contains(names, "reprise.control.v1.Control") {
		t.Errorf("reflection lists %v, %v", names, err)
	}
	if _, err := list(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without the token: %v", err)
	}
}

func TestGRPCOverHTTP1IsRefused(t *testing.T) {
	e := newEnv(t, "", 0)
	req, _ := http.NewRequest("POST", e.adminURL+"/reprise.control.v1.Control/Status", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 || resp.ProtoMajor != 1 {
		t.Errorf("gRPC over HTTP/1.1 answered %s %s", resp.Proto, resp.Status)
	}
}

// TestTailRecordsOverHTTP: GET /v1/records:tail streams the same records
// as newline-delimited JSON, behind the token, and ends with the hub.
func TestTailRecordsOverHTTP(t *testing.T) {
	e := newEnv(t, "tok", 0)
	if code, _ := e.rest("GET", "/v1/records:tail", ""); code != http.StatusUnauthorized {
		t.Fatalf("tail without the token: %d, want 401", code)
	}
	req, _ := http.NewRequestWithContext(e.ctx(), "GET", e.adminURL+"/v1/records:tail", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := e.client.Do(req) // returns once the headers are flushed: subscribed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	e.chat("h1")
	e.chat("h2")
	lines := bufio.NewScanner(resp.Body)
	for _, id := range []string{"h1", "h2"} {
		if !lines.Scan() {
			t.Fatalf("tail ended before %s: %v", id, lines.Err())
		}
		var msg controlv1.TailRecordsResponse
		if err := protojson.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		if r := msg.GetRecord(); r.GetRequestId() != id || r.GetStatus() != 200 || r.GetOutputTokens() != 4 {
			t.Errorf("record %s: %v", id, r)
		}
		if !strings.Contains(lines.Text(), `"request_id"`) {
			t.Errorf("line %q: want proto field names", lines.Text())
		}
	}
	e.hub.Close()
	if lines.Scan() {
		t.Errorf("a line after the hub closed: %q", lines.Text())
	}
}
