package workload

import (
	"errors"
	"fmt"
	"io"
)

// defaultBlockTokens is the block size of hash ids without BlockTokens
// (the Mooncake convention; internal/synth assumes the same).
const defaultBlockTokens = MooncakeBlockTokens

// capped caps prompt and output lengths.
type capped struct {
	wrapper
	maxPrompt, maxOutput int
	verbatim             int // verbatim prompts longer than the cap (or of unknown length)
	done                 bool
}

func newCapped(src Source, maxPrompt, maxOutput int) Source {
	return &capped{wrapper: wrapper{src}, maxPrompt: maxPrompt, maxOutput: maxOutput}
}

func (c *capped) Next() (Request, error) {
	r, err := c.inner.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			c.done = true
		}
		return r, err
	}
	capTokens(&r, c.maxPrompt, c.maxOutput, &c.verbatim)
	return r, nil
}

// capTokens applies the caps to r, counting in verbatim the prompts it
// cannot shorten.
func capTokens(r *Request, maxPrompt, maxOutput int, verbatim *int) {
	if maxPrompt > 0 {
		if r.Prompt != "" || len(r.Messages) > 0 {
			if r.PromptTokens == 0 || r.PromptTokens > maxPrompt {
				*verbatim++
			}
		} else if r.PromptTokens > maxPrompt {
			r.PromptTokens = maxPrompt
			block := r.BlockTokens
			if block <= 0 {
				block = defaultBlockTokens
			}
			// Keep the ids of the blocks that remain: block i depends only
			// on ids[:i+1], so two capped requests share exactly the
			// leading blocks they shared before, up to the cap.
			if keep := (maxPrompt + block - 1) / block; len(r.HashIDs) > keep {
				r.HashIDs = r.HashIDs[:keep:keep]
			}
		}
	}
	if maxOutput > 0 && (r.OutputTokens == 0 || r.OutputTokens > maxOutput) {
		r.OutputTokens = maxOutput
	}
}

// Warnings adds the verbatim prompts the cap could not shorten.
func (c *capped) Warnings() []string {
	w := c.wrapper.Warnings()
	if c.done && c.verbatim > 0 {
		w = append(w, fmt.Sprintf("--max-prompt-tokens %d: %d requests carry a verbatim prompt, sent as it is (it may be longer than the cap)", c.maxPrompt, c.verbatim))
	}
	return w
}

// mapModels renames models: Model, or TraceModel when Model is empty, is
// looked up in m (then under "*"); a match becomes the Model sent.
func mapModels(src Source, m map[string]string) Source {
	return Map(src, func(r *Request) {
		name := r.Model
		if name == "" {
			name = r.TraceModel
		}
		if to, ok := m[name]; ok {
			r.Model = to
		} else if to, ok := m["*"]; ok {
			r.Model = to
		}
	})
}
