package workload

import (
	"errors"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// Capture replays a Reprise capture: every chat and completions record, in
// arrival order, with production's record attached.
type Capture struct {
	r       *capture.Reader
	n       int
	t0      int64
	skipped int
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

// Next returns the next replayable request.
func (c *Capture) Next() (Request, error) {
	for {
		rec, err := c.r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Request{}, io.EOF
			}
			return Request{}, err
		}
		ep := openai.EndpointForPath(rec.Path)
		if rec.Shadow || (ep != openai.Chat && ep != openai.Completions) {
			c.skipped++
			continue
		}
		if c.n == 0 {
			c.t0 = rec.T
		}
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
	if c.r.Truncated() {
		return []string{"the capture's last segment ends mid-record (the proxy was killed); every whole record was read"}
	}
	return nil
}

// Close releases the capture's files.
func (c *Capture) Close() error { return c.r.Close() }
