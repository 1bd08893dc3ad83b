package synth

import (
	"encoding/json"
	"fmt"

	"github.com/reprise-llm/reprise/internal/workload"
)

// MeasurePrompt sets req.PromptTokens for a verbatim prompt (a prompts file
// row, an AIPerf text_input, a fully captured request) that has no token
// count yet: the prompt, or the sum over the messages' text contents, counted
// with the Builder's tokenizer. No chat template is applied (the target's
// template is unknown), so a chat request's server-reported count is
// larger by the template's tokens; the results' prompt_token_mismatch shows
// that difference. A request that already has a count keeps it.
func (b *Builder) MeasurePrompt(req *workload.Request) error {
	if req.PromptTokens > 0 {
		return nil
	}
	switch {
	case req.Prompt != "":
		n, err := b.tok.Count(req.Prompt)
		if err != nil {
			return fmt.Errorf("request %d: counting prompt tokens: %w", req.Index, err)
		}
		req.PromptTokens = n
	case len(req.Messages) > 0:
		n, err := b.countMessages(req.Messages)
		if err != nil {
			return fmt.Errorf("request %d: counting message tokens: %w", req.Index, err)
		}
		req.PromptTokens = n
	}
	return nil
}

// countMessages counts the tokens of every message's content: a string, or
// an array of parts whose "text" fields count.
func (b *Builder) countMessages(raw []byte) (int, error) {
	var msgs []struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, err
	}
	total := 0
	count := func(s string) error {
		n, err := b.tok.Count(s)
		total += n
		return err
	}
	for _, m := range msgs {
		if len(m.Content) == 0 || m.Content[0] == 'n' { // absent or null
			continue
		}
		var s string
		if err := json.Unmarshal(m.Content, &s); err == nil {
			if err := count(s); err != nil {
				return 0, err
			}
			continue
		}
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return 0, fmt.Errorf("message content: want a string or an array of parts: %w", err)
		}
		for _, p := range parts {
			if err := count(p.Text); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// Measured wraps src so that every request it yields has its verbatim
// prompt measured (MeasurePrompt) as it is read: the engine then records
// requested against server-reported prompt tokens for every request, not
// only synthesised ones.
//
// A prompt that cannot be measured (messages that are not valid JSON, a
// --tokenizer server that failed) stays unmeasured rather than stopping the
// run: its body fails with the reason, or it is sent and left out of the
// mismatch summary.
func Measured(src workload.Source, b *Builder) workload.Source {
	return workload.Map(src, func(req *workload.Request) {
		if b.MeasurePrompt(req) != nil {
			req.PromptTokens = 0
		}
	})
}
