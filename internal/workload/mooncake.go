package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Mooncake reads the Mooncake trace format (kvcache-ai/Mooncake FAST'25
// traces): one JSON object a line with timestamp in MILLISECONDS from the
// start, input_length and output_length in tokens, and hash_ids, one per
// 512-token block, equal ids meaning a reusable KV prefix.
type Mooncake struct {
	*lineFile
	n     int
	maxTS float64
}

var _ Source = (*Mooncake)(nil)

// MooncakeBlockTokens is the tokens per hash id in Mooncake traces.
const MooncakeBlockTokens = 512

// OpenMooncake opens a Mooncake JSONL trace.
func OpenMooncake(path string, opts OpenOptions) (*Mooncake, error) {
	l, err := openLines("mooncake", path, opts)
	if err != nil {
		return nil, err
	}
	return &Mooncake{lineFile: l}, nil
}

type mooncakeRow struct {
	Timestamp    *float64 `json:"timestamp"`
	InputLength  *int     `json:"input_length"`
	OutputLength *int     `json:"output_length"`
	HashIDs      []uint32 `json:"hash_ids"`
	SessionID    string   `json:"session_id"`
}

// Next returns the next request.
func (m *Mooncake) Next() (Request, error) {
	for {
		line, ok, err := m.next()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			if m.n > 1000 && m.maxTS > 0 && m.maxTS < 10_000 {
				m.warnings = append(m.warnings, fmt.Sprintf("%s: %d requests within %.0f timestamp units: Mooncake timestamps are milliseconds; this looks like seconds", m.path, m.n, m.maxTS))
			}
			return Request{}, io.EOF
		}
		var row mooncakeRow
		if err := json.Unmarshal(line, &row); err != nil {
			if err := m.invalid("mooncake", err); err != nil {
				return Request{}, err
			}
			continue
		}
		if err := row.check(); err != nil {
			if err := m.invalid("mooncake", err); err != nil {
				return Request{}, err
			}
			continue
		}
		m.maxTS = max(m.maxTS, *row.Timestamp)
		req := Request{
			Index: m.n, Offset: time.Duration(*row.Timestamp * float64(time.Millisecond)), Endpoint: openai.Chat,
			Stream: true, PromptTokens: *row.InputLength, OutputTokens: *row.OutputLength,
			HashIDs: row.HashIDs, BlockTokens: MooncakeBlockTokens, Session: row.SessionID,
		}
		m.n++
		return req, nil
	}
}

func (r *mooncakeRow) check() error {
	var errs []error
	if r.Timestamp == nil || *r.Timestamp < 0 {
		errs = append(errs, errors.New("timestamp missing or negative"))
	}
	if r.InputLength == nil || *r.InputLength < 0 {
		errs = append(errs, errors.New("input_length missing or negative"))
	}
	if r.OutputLength == nil || *r.OutputLength < 0 {
		errs = append(errs, errors.New("output_length missing or negative"))
	}
	return errors.Join(errs...)
}
