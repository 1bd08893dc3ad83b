package sim

import "encoding/json"

// usage is the OpenAI usage object.
type usage struct {
	PromptTokens        int            `json:"prompt_tokens"`
	CompletionTokens    int            `json:"completion_tokens"`
	TotalTokens         int            `json:"total_tokens"`
	PromptTokensDetails *promptDetails `json:"prompt_tokens_details,omitempty"`
}

type promptDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type choice struct {
	Index        int      `json:"index"`
	Delta        *delta   `json:"delta,omitempty"`   // chat chunks
	Message      *message `json:"message,omitempty"` // chat responses
	Text         *string  `json:"text,omitempty"`    // completions
	FinishReason *string  `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

// usage reports completion generated tokens so far.
func (j *job) usage(completion int) *usage {
	u := &usage{PromptTokens: len(j.ids), CompletionTokens: completion, TotalTokens: len(j.ids) + completion}
	if j.cached > 0 {
		u.PromptTokensDetails = &promptDetails{CachedTokens: j.cached}
	}
	return u
}

func (j *job) envelope(created int64, stream bool) completion {
	c := completion{ID: "cmpl-sim-" + j.id, Object: "text_completion", Created: created, Model: j.model}
	if j.chat {
		c.ID, c.Object = "chatcmpl-sim-"+j.id, "chat.completion"
		if stream {
			c.Object = "chat.completion.chunk"
		}
	}
	return c
}

// chunk renders one SSE event: a token, or the final event when finish is set.
func (j *job) chunk(tok string, first bool, finish string, u *usage, created int64) []byte {
	c := j.envelope(created, true)
	ch := choice{}
	if finish != "" {
		ch.FinishReason = &finish
	}
	if j.chat {
		ch.Delta = &delta{Content: tok}
		if first {
			ch.Delta.Role = "assistant"
		}
	} else {
		ch.Text = &tok
	}
	c.Choices, c.Usage = []choice{ch}, u
	return sse(c)
}

// usageChunk renders the usage-only event of stream_options.include_usage.
func (j *job) usageChunk(created int64) []byte {
	c := j.envelope(created, true)
	c.Choices, c.Usage = []choice{}, j.usage(j.tokens)
	return sse(c)
}

func sse(c completion) []byte {
	b, _ := json.Marshal(c)
	out := make([]byte, 0, len(b)+8)
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// response renders a non-streaming response.
func (j *job) response(text string, created int64) []byte {
	c := j.envelope(created, false)
	ch := choice{FinishReason: &j.finish}
	if j.chat {
		ch.Message = &message{Role: "assistant", Content: text}
	} else {
		ch.Text = &text
	}
	c.Choices, c.Usage = []choice{ch}, j.usage(j.tokens)
	b, _ := json.Marshal(c)
	return b
}
