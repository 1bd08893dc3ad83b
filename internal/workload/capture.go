package workload

import (
	"errors"
	"io"
	"sort"
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
type Capture struct {
	r         *capture.Reader
	recs      []*capture.Record
	loaded    bool
	n         int
	t0        int64
	skipped   int
	truncated bool
}

var _ Source = (*Capture)(nil)

// OpenCapture opens a capture directory or segment file.
func OpenCapture(path string) (*Capture, error) {
	r, err := capture.Open(path)
	if err != nil {
		return nil, err
	}
	return &Capture{r: r}, nil
}

// load reads every replayable record and sorts them by arrival.
func (c *Capture) load() error {
	c.loaded = true
	for {
		rec, err := c.r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = c.r.Close()
			return err
		}
		ep := openai.EndpointForPath(rec.Path)
		if rec.Shadow || (ep != openai.Chat && ep != openai.Completions) {
			c.skipped++
			continue
		}
		c.recs = append(c.recs, rec)
	}
	c.truncated = c.r.Truncated()
	sort.SliceStable(c.recs, func(i, j int) bool { return c.recs[i].T < c.recs[j].T })
	if len(c.recs) > 0 {
		c.t0 = c.recs[0].T
	}
	return c.r.Close()
}

// Next returns the next replayable request in arrival order.
func (c *Capture) Next() (Request, error) {
	if !c.loaded {
		if err := c.load(); err != nil {
			return Request{}, err
		}
	}
	for {
		if c.n >= len(c.recs) {
			return Request{}, io.EOF
		}
		rec := c.recs[c.n]
		c.recs[c.n] = nil // the caller holds it now
		ep := openai.EndpointForPath(rec.Path)
		req := Request{
			Index: c.n, ID: rec.ID, Offset: time.Duration(rec.T - c.t0), Endpoint: ep, Model: rec.Model,
			Stream: rec.Stream, PromptTokens: rec.PromptTokens, OutputTokens: rec.OutputTokens,
			HashIDs: rec.HashIDs, Session: rec.Session, Recorded: rec,
		}
		if req.OutputTokens == 0 {
			req.OutputTokens = rec.MaxTokens
		}
		if len(rec.HashIDs) > 0 && rec.Block > 0 {
			// Capture blocks are characters; about 4 characters per token.
			req.BlockTokens = max(rec.Block/4, 1)
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
}

// Skipped counts records that are not replayable requests (other paths, shadow).
func (c *Capture) Skipped() int { return c.skipped }

// Warnings reports a truncated final segment.
func (c *Capture) Warnings() []string {
	if c.truncated {
		return []string{"the capture's last segment ends mid-record (the proxy was killed); every whole record was read"}
	}
	return nil
}

// Close releases the capture's files.
func (c *Capture) Close() error {
	if c.loaded {
		return nil
	}
	return c.r.Close()
}
