// Package ingest is the collector's ingest endpoint: front ends that cannot
// write a capture themselves (the proxy-wasm filter inside Envoy) POST
// batches of records to it, and it writes them through the same capture
// writer as the reverse proxy, under the same privacy rules. The protocol is
// internal/ingest/wire.
//
// The handler validates each line on its own (bounded size, required
// fields, a plausible wall time) and refuses only that line, reporting it by
// number; it removes what the capture's content mode does not allow; it
// stamps nothing new except t, the record's offset from the capture's
// origin, computed from the record's wall time (the filter's clock is
// another machine's: see docs/envoy-istio.md).
package ingest

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
	"github.com/reprise-llm/reprise/internal/redact"
)

// RecordWriter receives the records of a batch. Write must never block; it
// returns false when the record could not be queued (counted as dropped).
// *capture.Writer and the proxy's sinks implement it.
type RecordWriter interface {
	Write(r *capture.Record) bool
}

var _ RecordWriter = (*capture.Writer)(nil)

// Defaults of the Config bounds.
const (
	DefaultMaxBodyBytes = 64 << 20
	DefaultMaxLineBytes = 16 << 20
	DefaultMaxLines     = 8192
	DefaultMaxPast      = 24 * time.Hour
	DefaultMaxFuture    = 10 * time.Minute
)

// maxErrors bounds the line errors a Result lists.
const maxErrors = 16

// maxIDLen bounds a record id, in bytes (the proxy's request id bound).
const maxIDLen = 128

// maxChain bounds a record's hash chain: 2^20 blocks is 2 G characters at
// the default block size, far past any parse cap.
const maxChain = 1 << 20

// Config configures a Handler. Field comments are the user documentation.
type Config struct {
	// Content is the capture's content mode (--capture-content): prompt and
	// messages are kept only with capture.ContentFull, hash ids only with
	// hashed or full. Whatever a record carries beyond it is removed and
	// counted, so a filter configured for more cannot widen the capture.
	Content string
	// Hasher is the capture's: it remaps the filters' chain values to
	// hash_ids, and its KeyID decides whether a record's keyed fields (hash
	// chain, session) were computed with this capture's key. Required.
	Hasher *capture.Hasher
	// Key is Hasher's key, served at wire.KeyPath so that filters hash with
	// it. nil: not served (404), and filters send no hash chains or
	// sessions.
	Key []byte
	// Origin is the capture's time origin (Manifest.Start): a record's t is
	// its wall time minus Origin's wall time.
	Origin time.Time
	// Now is the clock that bounds wall times; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds a batch, decoded (after gzip), in bytes.
	MaxBodyBytes int64
	// MaxLineBytes bounds one record line, in bytes; a longer line is
	// refused on its own.
	MaxLineBytes int
	// MaxLines bounds the lines of one batch; the rest are not read.
	MaxLines int
	// MaxPast and MaxFuture bound a record's wall time around Now: a record
	// outside them comes from a clock that is wrong, and its t would be
	// meaningless. Records of requests that arrived before the collector
	// started (queued while it was down) are within MaxPast: their t is
	// negative, which replay handles.
	MaxPast, MaxFuture time.Duration
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	switch c.Content {
	case capture.ContentNone, capture.ContentHashed, capture.ContentFull:
	default:
		errs = append(errs, fmt.Errorf("content %q: want none, hashed or full", c.Content))
	}
	if c.Hasher == nil {
		errs = append(errs, errors.New("a hasher is required"))
	}
	if c.Origin.IsZero() {
		errs = append(errs, errors.New("an origin is required"))
	}
	if c.MaxBodyBytes < 0 || c.MaxLineBytes < 0 || c.MaxLines < 0 || c.MaxPast < 0 || c.MaxFuture < 0 {
		errs = append(errs, errors.New("bounds must not be negative"))
	}
	return errors.Join(errs...)
}

// Stats are the handler's counters since start.
type Stats struct {
	Batches  int64 // batches received
	Refused  int64 // batches refused whole or in part (too large, bad encoding)
	Received int64 // lines read
	Written  int64 // records handed to the writer
	Rejected int64 // lines refused
	Dropped  int64 // valid records the writer's full queue refused
	Stripped int64 // records that lost fields (content mode, foreign key, block size)
}

// Handler serves wire.RecordsPath and wire.KeyPath.
type Handler struct {
	cfg  Config
	out  RecordWriter
	log  *zap.Logger
	key  []byte // JSON of wire.Key; nil when Config.Key is
	mux  *http.ServeMux
	orig time.Time // Origin's wall time

	batches, refused, received, written, dropped atomic.Int64
	rejected                                     [numRejectReasons]atomic.Int64
	stripped                                     [numStripReasons]atomic.Int64
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler writing to out. log may be nil.
func New(cfg Config, out RecordWriter, log *zap.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("ingest: a record writer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.MaxLines == 0 {
		cfg.MaxLines = DefaultMaxLines
	}
	if cfg.MaxPast == 0 {
		cfg.MaxPast = DefaultMaxPast
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	if log == nil {
		log = zap.NewNop()
	}
	h := &Handler{cfg: cfg, out: out, log: log, orig: cfg.Origin.Round(0)}
	if len(cfg.Key) > 0 {
		h.key, _ = json.Marshal(wire.Key{Key: cfg.Key, KeyID: cfg.Hasher.KeyID(), Block: cfg.Hasher.BlockChars()})
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST "+wire.RecordsPath, h.serveRecords)
	h.mux.HandleFunc("GET "+wire.KeyPath, h.serveKey)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	s := Stats{Batches: h.batches.Load(), Refused: h.refused.Load(), Received: h.received.Load(),
		Written: h.written.Load(), Dropped: h.dropped.Load()}
	for i := range h.rejected {
		s.Rejected += h.rejected[i].Load()
	}
	for i := range h.stripped {
		s.Stripped += h.stripped[i].Load()
	}
	return s
}

func (h *Handler) serveKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.key == nil {
		http.Error(w, "this collector serves no hash key", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.key)
}

// errTooLarge ends a batch that passed MaxBodyBytes.
var errTooLarge = errors.New("batch too large")

func (h *Handler) serveRecords(w http.ResponseWriter, r *http.Request) {
	h.batches.Add(1)
	var body io.Reader = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			h.refuse(w, http.StatusBadRequest, &wire.Result{KeyID: h.cfg.Hasher.KeyID()}, fmt.Errorf("reading gzip batch: %w", err))
			return
		}
		defer zr.Close()
		// The decoded size is bounded too: a small compressed body may
		// expand to anything.
		body = &limitedReader{r: zr, n: h.cfg.MaxBodyBytes}
	default:
		h.refuse(w, http.StatusUnsupportedMediaType, &wire.Result{KeyID: h.cfg.Hasher.KeyID()},
			fmt.Errorf("content-encoding %q: want gzip or none", enc))
		return
	}
	res, err := h.readBatch(body)
	switch {
	case err == nil:
		h.logBatch(res)
		writeResult(w, http.StatusOK, res)
	case errors.Is(err, errTooLarge) || isMaxBytes(err):
		h.refuse(w, http.StatusRequestEntityTooLarge, res,
			fmt.Errorf("batch passed %d bytes after %d lines; the rest was not read", h.cfg.MaxBodyBytes, res.Received))
	default:
		h.refuse(w, http.StatusBadRequest, res, fmt.Errorf("reading batch after %d lines: %w", res.Received, err))
	}
}

func isMaxBytes(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// refuse answers a batch that could not be read whole; res says what of
// it was.
func (h *Handler) refuse(w http.ResponseWriter, status int, res *wire.Result, err error) {
	h.refused.Add(1)
	h.log.Warn("ingest batch refused", zap.Int("status", status), zap.Error(err),
		zap.Int("received", res.Received), zap.Int("written", res.Written), zap.Int("rejected", res.Rejected))
	res.Errors = append(res.Errors, wire.LineError{Line: 0, Error: err.Error()})
	writeResult(w, status, res)
}

// logBatch logs a batch some of whose records were refused or dropped:
// counts and the first refusal, never a record's content.
func (h *Handler) logBatch(res *wire.Result) {
	if res.Rejected == 0 && res.Dropped == 0 {
		return
	}
	f := []zap.Field{zap.Int("received", res.Received), zap.Int("written", res.Written),
		zap.Int("rejected", res.Rejected), zap.Int("dropped", res.Dropped)}
	if len(res.Errors) > 0 {
		f = append(f, zap.String("first_error", fmt.Sprintf("line %d: %s", res.Errors[0].Line, res.Errors[0].Error)))
	}
	if res.Dropped > 0 {
		h.log.Warn("ingest batch: capture queue full, records dropped (the sending filter counts them too)", f...)
		return
	}
	h.log.Warn("ingest batch: lines refused", f...)
}

func writeResult(w http.ResponseWriter, status int, res *wire.Result) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

// readBatch reads lines until EOF, MaxLines, or an error, handling each.
func (h *Handler) readBatch(body io.Reader) (*wire.Result, error) {
	res := &wire.Result{KeyID: h.cfg.Hasher.KeyID()}
	br := bufio.NewReaderSize(body, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		line, long, err := readLine(br, &buf, h.cfg.MaxLineBytes)
		if err != nil && err != io.EOF {
			// A line cut by a read error or a bound is not a record.
			return res, err
		}
		if len(line) > 0 || long {
			if res.Received >= h.cfg.MaxLines {
				return res, fmt.Errorf("%w: more than %d lines", errTooLarge, h.cfg.MaxLines)
			}
			res.Received++
			h.received.Add(1)
			h.line(res, n, line, long)
		}
		if err == io.EOF {
			return res, nil
		}
	}
}

// readLine reads one '\n'-terminated line into *buf (reused), without the
// newline. A line longer than max is read to its end and discarded: long
// is then true and line nil.
func readLine(br *bufio.Reader, buf *[]byte, max int) (line []byte, long bool, err error) {
	*buf = (*buf)[:0]
	for {
		frag, ferr := br.ReadSlice('\n')
		if !long {
			if len(*buf)+len(frag) > max+1 { // +1: the newline
				long, *buf = true, (*buf)[:0]
			} else {
				*buf = append(*buf, frag...)
			}
		}
		if ferr == bufio.ErrBufferFull {
			continue
		}
		if long {
			return nil, true, ferr
		}
		line = *buf
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, false, ferr
	}
}

// line handles line n of a batch.
func (h *Handler) line(res *wire.Result, n int, line []byte, long bool) {
	if long {
		h.reject(res, n, rejectTooLong, fmt.Sprintf("longer than %d bytes", h.cfg.MaxLineBytes))
		return
	}
	rec := new(capture.Record)
	ln := wire.Line{Record: rec}
	if err := json.Unmarshal(line, &ln); err != nil {
		h.reject(res, n, rejectJSON, jsonError(err))
		return
	}
	if reason, msg := h.check(rec, &ln); reason >= 0 {
		h.reject(res, n, reason, msg)
		return
	}
	h.admit(rec, &ln)
	if h.out.Write(rec) {
		res.Written++
		h.written.Add(1)
	} else {
		res.Dropped++
		h.dropped.Add(1)
	}
}

// jsonError describes a decoding error without quoting the line: a syntax
// error's offset, or the member whose type was wrong.
func jsonError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not JSON (offset %d)", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("member %q: not a %s", strings.TrimPrefix(te.Field, "Record."), te.Type)
	}
	return redact.Text(err.Error())
}

func (h *Handler) reject(res *wire.Result, n int, reason rejectReason, msg string) {
	res.Rejected++
	h.rejected[reason].Add(1)
	if len(res.Errors) < maxErrors {
		res.Errors = append(res.Errors, wire.LineError{Line: n, Error: msg})
	}
}

// check validates a decoded record; reason < 0 means it is fine.
func (h *Handler) check(rec *capture.Record, ln *wire.Line) (rejectReason, string) {
	switch {
	case rec.ID == "" || len(rec.ID) > maxIDLen:
		return rejectInvalid, fmt.Sprintf("id: want 1 to %d bytes", maxIDLen)
	case rec.Path == "":
		return rejectInvalid, "path missing"
	case rec.Source != capture.SourceWasm && rec.Source != capture.SourceExtProc:
		return rejectInvalid, fmt.Sprintf("source %q: want %q or %q", rec.Source, capture.SourceWasm, capture.SourceExtProc)
	case rec.Shadow:
		return rejectInvalid, "shadow records are the proxy's own"
	case rec.Wall.IsZero():
		return rejectInvalid, "wall missing"
	case rec.TTFBNs < 0 || rec.TTFTNs < 0 || rec.E2ENs < 0:
		return rejectInvalid, "negative duration"
	case len(rec.ChunksUS) != len(rec.ChunkTokens):
		return rejectInvalid, "chunks_us and chunk_tokens differ in length"
	case len(ln.HashChain) > maxChain:
		return rejectInvalid, "hash chain too long"
	}
	now := h.cfg.Now()
	if rec.Wall.Before(now.Add(-h.cfg.MaxPast)) || rec.Wall.After(now.Add(h.cfg.MaxFuture)) {
		return rejectClock, fmt.Sprintf("wall %s is more than %v before or %v after the collector's clock (%s): a wrong clock",
			rec.Wall.UTC().Format(time.RFC3339), h.cfg.MaxPast, h.cfg.MaxFuture, now.UTC().Format(time.RFC3339))
	}
	return -1, ""
}

// admit makes a valid record the capture's: t from its wall time, hash
// ids from its chain, and nothing the content mode or the key forbid.
func (h *Handler) admit(rec *capture.Record, ln *wire.Line) {
	rec.T = int64(rec.Wall.Sub(h.orig))
	rec.Wall = rec.Wall.UTC()
	chain := ln.HashChain
	rec.HashIDs = nil // only the collector's remap means anything across filters
	keyed := len(chain) > 0 || rec.Session != ""
	if keyed && ln.KeyID != h.cfg.Hasher.KeyID() {
		// Computed with another key (a collector restart handed out a
		// fresh one): equal prefixes would not get equal ids. The filter
		// sees the key id in the Result and fetches the key again.
		chain, rec.Session = nil, ""
		h.stripped[stripKey].Add(1)
	}
	if len(chain) > 0 && rec.Block != h.cfg.Hasher.BlockChars() {
		chain = nil
		h.stripped[stripBlock].Add(1)
	}
	stripped := false
	if h.cfg.Content == capture.ContentNone && len(chain) > 0 {
		chain, stripped = nil, true
	}
	if h.cfg.Content != capture.ContentFull && (rec.Prompt != "" || len(rec.Messages) > 0) {
		rec.Prompt, rec.Messages, stripped = "", nil, true
	}
	if stripped {
		h.stripped[stripContent].Add(1)
	}
	if len(chain) > 0 {
		rec.HashIDs = h.cfg.Hasher.Remap(wire.Values(chain))
	} else {
		rec.Block = 0
	}
	// The filter scrubs errors with the same function; again here, so
	// that nothing reaches the capture unscrubbed whoever sent it.
	rec.Error = redact.Text(rec.Error)
}

// limitedReader returns errTooLarge once more than n bytes were read.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, errTooLarge
	}
	return n, err
}
