package proxycli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
)

// ingestOptions are the flags of the ingest listener, the collector of the
// proxy-wasm filter's batches (internal/ingest).
type ingestOptions struct {
	listen    string
	bodyBytes int64
	lineBytes int
	bound     string // the address bound, once it is
}

func ingestFlags(fs *flag.FlagSet, o *ingestOptions) {
	fs.StringVar(&o.listen, "ingest-listen", "", "address for the proxy-wasm filter's record batches (HTTP: POST /v1/ingest/records, GET /v1/ingest/key), e.g. :9092; it serves the hash key, so restrict it to the gateways (empty: off). With it, --upstream is optional")
	fs.Int64Var(&o.bodyBytes, "ingest-max-batch-bytes", ingest.DefaultMaxBodyBytes, "bytes of one decoded batch; the rest of a larger one is refused (413)")
	fs.IntVar(&o.lineBytes, "ingest-max-record-bytes", ingest.DefaultMaxLineBytes, "bytes of one record line; a longer one is refused on its own")
}

// validateIngest checks the ingest flags, every problem at once; the
// content mode too when no other front end checks it.
func (o *options) validateIngest() error {
	if o.ingest.listen == "" {
		return nil
	}
	var errs []error
	if o.ingest.bodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("--ingest-max-batch-bytes %d: must be positive", o.ingest.bodyBytes))
	}
	if o.ingest.lineBytes <= 0 {
		errs = append(errs, fmt.Errorf("--ingest-max-record-bytes %d: must be positive", o.ingest.lineBytes))
	}
	if !o.runsProxy() && o.extproc.listen == "" {
		switch o.proxy.Content {
		case capture.ContentNone, capture.ContentHashed, capture.ContentFull:
		default:
			errs = append(errs, fmt.Errorf("--capture-content %q: want none, hashed or full", o.proxy.Content))
		}
	}
	return errors.Join(errs...)
}

// hashKey returns key, or with --ingest-listen and no --hash-key-file a
// fresh random key: the listener serves it to the filters, so it must be
// known here (capture.NewHasher would draw one it never shows).
func (o *ingestOptions) hashKey(key []byte) []byte {
	if o.listen == "" || len(key) > 0 {
		return key
	}
	key = make([]byte, 32)
	_, _ = rand.Read(key) // never fails (Go 1.24+ crashes instead)
	return key
}

// listenIngest binds --ingest-listen (nil when it is empty).
func (o *ingestOptions) listenIngest() (net.Listener, error) {
	if o.listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, fmt.Errorf("listening on --ingest-listen %s: %w", o.listen, err)
	}
	o.bound = ln.Addr().String()
	return ln, nil
}

// newIngest builds the ingest handler over the capture's hasher, content
// mode and origin, its metrics in the front ends' registry; nil without
// --ingest-listen.
func (o *options) newIngest(out ingest.RecordWriter, hasher *capture.Hasher, key []byte, origin time.Time, log *zap.Logger) (*ingest.Handler, error) {
	if o.ingest.listen == "" {
		return nil, nil
	}
	h, err := ingest.New(ingest.Config{
		Content: o.proxy.Content, Hasher: hasher, Key: key, Origin: origin,
		MaxBodyBytes: o.ingest.bodyBytes, MaxLineBytes: o.ingest.lineBytes,
	}, out, log.Named("ingest"))
	if err != nil {
		return nil, err
	}
	o.front.reg.MustRegister(h)
	o.front.ingest = h
	return h, nil
}

// serveIngest serves h on ln; Serve's error goes to serveErr.
func serveIngest(h *ingest.Handler, ln net.Listener, serveErr chan<- error, stdout io.Writer, dir string, log *zap.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: zap.NewStdLog(log.Named("ingest.http"))}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("ingest: %w", err)
		}
	}()
	fmt.Fprintf(stdout, "ingest listening on http://%s (proxy-wasm filter batches), capturing to %s\n", ln.Addr(), dir)
	log.Info("ingest listener started", zap.String("ingest_listen", ln.Addr().String()), zap.String("capture_dir", dir))
	return srv
}

// drainIngest stops accepting batches and waits, within bound, for the
// ones being read, so their records reach the writer before it closes. A
// batch cut at the bound is lost to the filter that sent it (it counts it).
func drainIngest(srv *http.Server, bound time.Duration, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("drain timeout passed; cutting ingest batches being read", zap.Duration("drain_timeout", bound))
		_ = srv.Close()
	}
}
