package workload

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// Capture replays a Reprise capture: every chat and completions record, in
// arrival order, with production's record attached.
//
// The proxy writes a record when its response ends, so segments are in
// completion order; a long request that arrived first is written after
// short ones that arrived later. Replay needs arrival order, so the source
// reads the whole capture and sorts it by arrival (t) — memory grows with
// the capture's size, about half a kilobyte per request.
//
// Sessions: the proxy records a session key (a hash of the session header
// or the body's user) for every request, but a key is not a conversation —
// one user's requests often overlap. A request is chained to its session
// (Request.Session set, so the engine sends it only after the session's
// previous turn ended plus Delay) only when it really was the next turn:
// it arrived after every earlier request of the session had ended, in
// production. It then follows the request that ended last, with the
// recorded gap as its think time. A request that overlapped an earlier
// one starts a lane of its own (the key with "#n" appended), which later
// turns may follow: requests that overlapped in production overlap in the
// replay. Sampling and sharding keep each lane whole (they key on Session).
type Capture struct {
	opts      OpenOptions
	r         *capture.Reader
	recs      []*capture.Record
	loaded    bool
	n         int
	t0        int64
	corrupt   int // corrupt records or segments skipped (SkipInvalid)
	warnings  []string
	truncated bool
	sessions  map[string]*captureSession
	// path names the capture in warnings. Records lost: known (corrupt
	// records and those counted after them in skipped segments), skipped
	// segments whose rest could not be decoded (uncounted), and segments
	// missing from the numbering.
	path                            string
	lostRecords, uncounted, missing int
	// tokensPerChar is the capture's Σprompt_tokens/Σprompt_chars over
	// records whose prompt tokens came from the server's usage; 0 when no
	// record has both (blocks then assume 4 characters per token).
	tokensPerChar float64
	shadow, other int // records skipped: shadow responses, non-OpenAI paths
}

// captureSession tracks one recorded session key while requests are emitted.
type captureSession struct {
	end   int64          // latest recorded end (ns) of its requests so far
	lane  string         // the lane of the request that ended last
	lanes int            // lanes started
	turns map[string]int // turns emitted per lane
}

var _ Source = (*Capture)(nil)

// OpenCapture opens a capture directory or segment file. With
// opts.SkipInvalid, a corrupt record is counted (Skipped) and reading goes
// on with the segment's next readable part: the capture reader stops at
// corruption, so the rest of that segment is skipped and the next segment
// is read; a warning names the segment and the records lost with it.
// Segments missing from the capture's numbering and empty captures passed
// over (capture.Open) are warnings too, given to opts.Warn at once.
func OpenCapture(path string, opts OpenOptions) (*Capture, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, err
	}
	c := &Capture{r: r, opts: opts, path: path, sessions: map[string]*captureSession{}}
	for _, n := range r.Notes() {
		c.addWarning(n)
	}
	for _, g := range r.Gaps() {
		c.missing += g.Segments()
		c.addWarning(g.String())
	}
	return c, nil
}

// load reads every replayable record and sorts them by arrival.
func (c *Capture) load() error {
	c.loaded = true
	err := c.read()
	if err != nil {
		return err
	}
	sort.SliceStable(c.recs, func(i, j int) bool { return c.recs[i].T < c.recs[j].T })
	c.tokensPerChar = captureTokensPerChar(c.recs)
	if len(c.recs) > 0 {
		c.t0 = c.recs[0].T
	}
	return nil
}

// read appends the capture's replayable records and closes its reader.
// With SkipInvalid, a corruption gives up the rest of its segment (counted
// and named in a warning) and reading goes on with the next segment.
func (c *Capture) read() error {
	defer func() { _ = c.r.Close() }()
	for {
		rec, err := c.r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var ce *capture.CorruptError
		if c.opts.SkipInvalid && errors.As(err, &ce) {
			if skip, ok := c.r.SkipSegment(); ok {
				c.note(skip)
				continue
			}
		}
		if err != nil {
			return err
		}
		ep := openai.EndpointForPath(rec.Path)
		if rec.Shadow || (ep != openai.Chat && ep != openai.Completions) {
			if rec.Shadow {
				c.shadow++
			} else {
				c.other++
			}
			continue
		}
		c.recs = append(c.recs, rec)
	}
	c.truncated = c.r.Truncated()
	return nil
}

// note counts a skipped corruption and the records lost with it, and
// keeps a warning naming them.
func (c *Capture) note(skip capture.SkippedSegment) {
	c.corrupt++
	c.lostRecords += skip.Lost()
	if !skip.Exact {
		c.uncounted++
	}
	c.addWarning(fmt.Sprintf("capture %s: %s", c.path, skip))
}

// addWarning keeps msg for Warnings and passes it to OpenOptions.Warn.
func (c *Capture) addWarning(msg string) {
	c.warnings = append(c.warnings, msg)
	if c.opts.Warn != nil {
		c.opts.Warn(msg)
	}
}

// Next returns the next replayable request in arrival order.
func (c *Capture) Next() (Request, error) {
	if !c.loaded {
		if err := c.load(); err != nil {
			return Request{}, err
		}
	}
	if c.n >= len(c.recs) {
		return Request{}, io.EOF
	}
	rec := c.recs[c.n]
	c.recs[c.n] = nil // the caller holds it now
	ep := openai.EndpointForPath(rec.Path)
	req := Request{
		Index: c.n, ID: rec.ID, Offset: time.Duration(rec.T - c.t0), Endpoint: ep, Model: rec.Model,
		Stream: rec.Stream, PromptTokens: rec.PromptTokens, OutputTokens: rec.OutputTokens,
		HashIDs: rec.HashIDs, Recorded: rec,
	}
	c.chain(&req, rec)
	if req.OutputTokens == 0 {
		req.OutputTokens = rec.MaxTokens
	}
	if len(rec.HashIDs) > 0 && rec.Block > 0 {
		req.BlockTokens = c.blockTokens(rec.Block)
	}
	// Full content capture: send the recorded prompt verbatim.
	if ep == openai.Completions && rec.Prompt != "" {
		req.Prompt = rec.Prompt
	}
	if ep == openai.Chat && len(rec.Messages) > 0 {
		req.Messages = rec.Messages
	}
	c.n++
	return req, nil
}

// captureTokensPerChar is Σprompt_tokens/Σprompt_chars over the records
// that have both, with prompt tokens from the server's usage (an estimate
// would only echo openai.EstimateTokens' own 4 characters per token); 0 when
// none has. Prompt characters count message contents only, so a chat
// template's tokens raise the ratio a little.
func captureTokensPerChar(recs []*capture.Record) float64 {
	var tokens, chars int64
	for _, r := range recs {
		if r.PromptTokens > 0 && r.PromptChars > 0 && r.TokensSource == capture.TokensUsage {
			tokens += int64(r.PromptTokens)
			chars += int64(r.PromptChars)
		}
	}
	if chars == 0 {
		return 0
	}
	return float64(tokens) / float64(chars)
}

// blockTokens is the token size of a capture hash block of block
// characters: block × the capture's tokens per character, rounded, or
// block/4 when the capture has no usage to measure it. One ratio per
// capture keeps every block of a capture the same size, so equal ids stay
// byte-identical blocks.
func (c *Capture) blockTokens(block int) int {
	if c.tokensPerChar > 0 {
		return max(int(math.Round(float64(block)*c.tokensPerChar)), 1)
	}
	return max(block/4, 1)
}

// recordedEnd is when rec's response ended in production (ns since the
// capture's start): arrival plus its end-to-end time, or its first byte
// when it has none (a failed request).
func recordedEnd(rec *capture.Record) int64 {
	return rec.T + max(rec.E2ENs, rec.TTFBNs, 0)
}

// chain sets req's Session, Turn and Delay from rec's session key (see Capture).
func (c *Capture) chain(req *Request, rec *capture.Record) {
	if rec.Session == "" {
		return
	}
	end := recordedEnd(rec)
	s := c.sessions[rec.Session]
	if s == nil {
		s = &captureSession{lanes: 1, lane: rec.Session, turns: map[string]int{}}
		c.sessions[rec.Session] = s
		req.Session = rec.Session
		s.end, s.turns[req.Session] = end, 1
		return
	}
	if rec.T >= s.end {
		// The next turn: every earlier request of the session had ended.
		req.Session = s.lane
		req.Turn = s.turns[s.lane]
		req.Delay = time.Duration(rec.T - s.end)
	} else {
		// Overlapped an earlier request: a lane of its own.
		s.lanes++
		req.Session = rec.Session + "#" + strconv.Itoa(s.lanes)
	}
	s.turns[req.Session]++
	if end >= s.end {
		s.end, s.lane = end, req.Session
	}
}

// Skipped counts, with SkipInvalid, the corrupt records skipped (each with
// the rest of its segment). Records that are not replayable requests
// (shadow responses, other paths) are valid, so they are not counted here
// but in NotReplayable and a Warnings line.
func (c *Capture) Skipped() int { return c.corrupt }

// NotReplayable counts the records read that are not replayable requests:
// shadow candidates' responses and paths other than chat and completions
// (GET /v1/models, embeddings, ...).
func (c *Capture) NotReplayable() (shadow, other int) { return c.shadow, c.other }

// Warnings reports records that are not replayable, a truncated final
// segment and skipped corruption.
func (c *Capture) Warnings() []string {
	w := slices.Clone(c.warnings)
	if c.lostRecords > 0 || c.missing > 0 {
		w = append(w, c.lossSummary())
	}
	if n := c.shadow + c.other; n > 0 {
		w = append(w, fmt.Sprintf("%d capture records not replayable: shadow %d, other paths %d", n, c.shadow, c.other))
	}
	if c.truncated {
		w = append(w, "the capture's last segment ends mid-record (the proxy was killed); every whole record was read")
	}
	return w
}

// lossSummary totals what the warnings above it name one by one: records
// skipped with corrupt segments and segments missing.
func (c *Capture) lossSummary() string {
	var parts []string
	if c.lostRecords > 0 {
		part := fmt.Sprintf("%s skipped in %s", nOf(c.lostRecords, "record"), nOf(c.corrupt, "corrupt segment"))
		if c.uncounted > 0 {
			part = fmt.Sprintf("at least %s (%d undecodable past the corruption, their remaining records uncounted)", part, c.uncounted)
		}
		parts = append(parts, part)
	}
	if c.missing > 0 {
		parts = append(parts, nOf(c.missing, "segment")+" missing, their records lost")
	}
	return fmt.Sprintf("capture %s: not replayed: %s", c.path, strings.Join(parts, "; "))
}

// nOf is "1 thing" or "n things".
func nOf(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// CapturePrefixReuse reads the capture at path (as OpenCapture does, with
// opts) and measures its prefix reuse at its own block size (fine) and at
// capture.CoarseBlockChars, Mooncake's 512 tokens (coarse): the share of
// prompt characters and tokens in blocks an earlier request sent, over its
// replayable requests in arrival order (see capture.ReuseCounter). The
// difference between the two is the sharing coarse blocks cannot see, a
// short system prompt's. A caller already reading the capture's requests
// (replay inspect) can instead feed each Request.Recorded, in order, to a
// capture.ReuseCounter of its own.
func CapturePrefixReuse(path string, opts OpenOptions) (fine, coarse capture.Reuse, err error) {
	c, err := OpenCapture(path, opts)
	if err != nil {
		return fine, coarse, err
	}
	defer func() { _ = c.Close() }()
	rc := capture.NewReuseCounter(0)
	for {
		req, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fine, coarse, err
		}
		if err := rc.Add(req.Recorded); err != nil {
			return fine, coarse, fmt.Errorf("capture %s: %w", path, err)
		}
	}
	return rc.Fine(), rc.Coarse(), nil
}

// Close releases the capture's files.
func (c *Capture) Close() error {
	if c.loaded {
		return nil
	}
	return c.r.Close()
}
