package workload

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Synthetic yields requests with lengths drawn from clipped normal
// distributions, in GuideLLM's vocabulary. Offsets are all zero: a rate
// profile schedules them.
type Synthetic struct {
	Spec SyntheticSpec
	rng  *rand.Rand
	n    int
}

var _ Source = (*Synthetic)(nil)

// SyntheticSpec is the parsed `synthetic:` spec.
type SyntheticSpec struct {
	Prompt, Output Lengths
	Samples        int   // requests to generate (default 1000)
	Seed           int64 // default 42
}

// Lengths is a clipped normal distribution of token counts.
type Lengths struct {
	Mean, Stdev float64
	Min, Max    int // 0 Max means unbounded
}

func (l Lengths) draw(rng *rand.Rand) int {
	v := l.Mean
	if l.Stdev > 0 {
		v += rng.NormFloat64() * l.Stdev
	}
	n := int(v + 0.5)
	if n < l.Min {
		n = l.Min
	}
	if l.Max > 0 && n > l.Max {
		n = l.Max
	}
	return max(n, 1)
}

// maxSynthetic bounds every number in a synthetic spec.
const maxSynthetic = 1e12

// ParseSynthetic parses "prompt_tokens=256,output_tokens=128,..." with keys
// prompt_tokens, output_tokens, each with _stdev, _min, _max; samples; seed.
func ParseSynthetic(spec string) (*Synthetic, error) {
	s := SyntheticSpec{Samples: 1000, Seed: 42}
	var errs []error
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%q: want key=value", kv))
			continue
		}
		seen[k] = true
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= maxSynthetic) {
			errs = append(errs, fmt.Errorf("%s=%q: want a number in [0, 1e12]", k, v))
			continue
		}
		switch k {
		case "prompt_tokens":
			s.Prompt.Mean = f
		case "prompt_tokens_stdev":
			s.Prompt.Stdev = f
		case "prompt_tokens_min":
			s.Prompt.Min = int(f)
		case "prompt_tokens_max":
			s.Prompt.Max = int(f)
		case "output_tokens":
			s.Output.Mean = f
		case "output_tokens_stdev":
			s.Output.Stdev = f
		case "output_tokens_min":
			s.Output.Min = int(f)
		case "output_tokens_max":
			s.Output.Max = int(f)
		case "samples":
			s.Samples = int(f)
		case "seed":
			s.Seed = int64(f)
		default:
			errs = append(errs, fmt.Errorf("unknown key %q (want prompt_tokens, output_tokens, their _stdev/_min/_max, samples, seed)", k))
		}
	}
	if !seen["prompt_tokens"] {
		errs = append(errs, errors.New("prompt_tokens is required"))
	}
	if !seen["output_tokens"] {
		errs = append(errs, errors.New("output_tokens is required"))
	}
	if s.Samples <= 0 {
		errs = append(errs, errors.New("samples must be positive"))
	}
	for _, l := range []struct {
		name string
		Lengths
	}{{"prompt_tokens", s.Prompt}, {"output_tokens", s.Output}} {
		if l.Max > 0 && l.Max < l.Min {
			errs = append(errs, fmt.Errorf("%s_max %d is below %s_min %d", l.name, l.Max, l.name, l.Min))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("synthetic workload %q: %w", spec, err)
	}
	return &Synthetic{Spec: s, rng: rand.New(rand.NewPCG(uint64(s.Seed), 0x5eed))}, nil
}

// Next returns the next request.
func (s *Synthetic) Next() (Request, error) {
	if s.n >= s.Spec.Samples {
		return Request{}, io.EOF
	}
	r := Request{Index: s.n, Endpoint: openai.Chat, Stream: true,
		PromptTokens: s.Spec.Prompt.draw(s.rng), OutputTokens: s.Spec.Output.draw(s.rng)}
	s.n++
	return r, nil
}
