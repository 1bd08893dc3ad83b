package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// maxSynthetic bounds every number in a synthetic spec.
const maxSynthetic = 1e12

// syntheticKeys are the keys a synthetic spec takes (GuideLLM's names).
var syntheticKeys = []string{
	"prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min", "prompt_tokens_max",
	"output_tokens", "output_tokens_stdev", "output_tokens_min", "output_tokens_max",
	"samples", "seed", "turns",
	"delay", "delay_stdev", "delay_min", "delay_max",
	"prefix_tokens", "prefix_count", "prefix_buckets",
}

// ParseSynthetic parses a synthetic spec in GuideLLM's vocabulary, either
// as "key=value,..." or as the JSON object GuideLLM's --data takes
// ({"prompt_tokens":256,...}):
//
//	prompt_tokens            new prompt tokens per turn (required), with
//	prompt_tokens_stdev      ... a normal draw (none: uniform over [min, max])
//	prompt_tokens_min/_max   ... its range (defaults: mean ∓ 5 stdev)
//	output_tokens[...]       output tokens per turn, the same four keys
//	                         (omitted: the server decides)
//	samples                  conversations (default 1000)
//	seed                     default 42
//	turns                    requests per conversation (default 1); each
//	                         turn's prompt holds the whole conversation so far
//	delay[_stdev/_min/_max]  think time before turns after the first, seconds
//	prefix_tokens            a shared prefix of this many tokens ...
//	prefix_count             ... one of this many distinct ones (default 1)
//	prefix_buckets           JSON only: [{"bucket_weight":W,"prefix_count":C,"prefix_tokens":T},...]
func ParseSynthetic(spec string) (*Synthetic, error) {
	s, err := parseSyntheticSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("synthetic workload %q: %w", spec, err)
	}
	return newSynthetic(s), nil
}

func parseSyntheticSpec(spec string) (SyntheticSpec, error) {
	kv, buckets, err := syntheticPairs(spec)
	if err != nil && strings.HasPrefix(strings.TrimSpace(spec), "{") {
		return SyntheticSpec{}, err
	}
	s := SyntheticSpec{Samples: 1000, Seed: 42, Turns: 1, PrefixBuckets: buckets}
	errs := []error{err}
	seen := map[string]bool{}
	var prefixTokens, prefixCount float64
	for _, p := range kv {
		k, v := p[0], p[1]
		seen[k] = true
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= maxSynthetic) || (f != math.Trunc(f) && !floatKey(k)) {
			want := "a whole number"
			if floatKey(k) {
				want = "a number"
			}
			if k == "seed" {
				if i, err := strconv.ParseInt(v, 10, 64); err == nil {
					s.Seed = i
					continue
				}
			}
			errs = append(errs, fmt.Errorf("%s=%q: want %s in [0, 1e12]", k, v, want))
			continue
		}
		i := int(f)
		switch k {
		case "prompt_tokens":
			s.Prompt.Mean = f
		case "prompt_tokens_stdev":
			s.Prompt.Stdev = f
		case "prompt_tokens_min":
			s.Prompt.Min = i
		case "prompt_tokens_max":
			s.Prompt.Max = i
		case "output_tokens":
			s.Output.Mean = f
		case "output_tokens_stdev":
			s.Output.Stdev = f
		case "output_tokens_min":
			s.Output.Min = i
		case "output_tokens_max":
			s.Output.Max = i
		case "samples":
			s.Samples = i
		case "seed":
			s.Seed = int64(f)
		case "turns":
			s.Turns = i
		case "delay":
			s.Delay.Mean = f
		case "delay_stdev":
			s.Delay.Stdev = f
		case "delay_min":
			s.Delay.Min = f
		case "delay_max":
			s.Delay.Max = f
		case "prefix_tokens":
			prefixTokens = f
		case "prefix_count":
			prefixCount = f
		default:
			errs = append(errs, fmt.Errorf("unknown key %q (want %s)", k, strings.Join(syntheticKeys, ", ")))
		}
	}
	if seen["prefix_tokens"] || seen["prefix_count"] {
		if buckets != nil {
			errs = append(errs, errors.New("prefix_buckets is mutually exclusive with prefix_tokens and prefix_count (as in GuideLLM)"))
		}
		s.PrefixBuckets = []PrefixBucket{{Weight: 100, Count: max(int(prefixCount), 1), Tokens: int(prefixTokens)}}
	}
	errs = append(errs, s.validate(seen)...)
	return s, errors.Join(errs...)
}

func floatKey(k string) bool {
	return strings.HasPrefix(k, "delay") || strings.HasSuffix(k, "_stdev") || k == "prompt_tokens" || k == "output_tokens"
}

func (s *SyntheticSpec) validate(seen map[string]bool) []error {
	var errs []error
	if !seen["prompt_tokens"] || s.Prompt.Mean < 1 {
		errs = append(errs, errors.New("prompt_tokens is required and at least 1"))
	}
	for _, mean := range []string{"prompt_tokens", "output_tokens", "delay"} {
		if !seen[mean] && (seen[mean+"_stdev"] || seen[mean+"_min"] || seen[mean+"_max"]) {
			errs = append(errs, fmt.Errorf("%s must be set when %s_stdev, %s_min or %s_max are", mean, mean, mean, mean))
		}
	}
	if s.Samples <= 0 {
		errs = append(errs, errors.New("samples must be positive"))
	}
	if s.Turns < 1 || s.Turns > 10000 {
		errs = append(errs, fmt.Errorf("turns %d: want 1 to 10000", s.Turns))
	}
	for _, l := range []struct {
		name string
		Lengths
	}{{"prompt_tokens", s.Prompt}, {"output_tokens", s.Output}} {
		if l.Max > 0 && l.Max < l.Min {
			errs = append(errs, fmt.Errorf("%s_max %d is below %s_min %d", l.name, l.Max, l.name, l.Min))
		}
	}
	if s.Delay.Max > 0 && s.Delay.Max < s.Delay.Min {
		errs = append(errs, fmt.Errorf("delay_max %v is below delay_min %v", s.Delay.Max, s.Delay.Min))
	}
	total := 0
	for i, b := range s.PrefixBuckets {
		if b.Weight < 1 || b.Count < 1 || b.Tokens < 0 || b.Tokens > maxSyntheticPrompt || b.Count > 1<<24 || b.Weight > 1<<24 {
			errs = append(errs, fmt.Errorf("prefix bucket %d: want bucket_weight >= 1, prefix_count 1 to 16777216, prefix_tokens 0 to %d", i, maxSyntheticPrompt))
		}
		total += b.Count
	}
	if total > 1<<24 {
		errs = append(errs, errors.New("prefix buckets: more than 16777216 prefixes in all"))
	}
	return errs
}

// syntheticPairs splits a spec into key/value pairs in order, and decodes
// prefix_buckets from the JSON form.
func syntheticPairs(spec string) (kv [][2]string, buckets []PrefixBucket, err error) {
	spec = strings.TrimSpace(spec)
	if !strings.HasPrefix(spec, "{") {
		var errs []error
		for _, p := range strings.Split(spec, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				errs = append(errs, fmt.Errorf("%q: want key=value", p))
				continue
			}
			if k = strings.TrimSpace(k); k == "prefix_buckets" {
				errs = append(errs, errors.New("prefix_buckets is a list: give the spec as JSON, synthetic:{\"prompt_tokens\":...,\"prefix_buckets\":[...]}"))
				continue
			}
			kv = append(kv, [2]string{k, strings.TrimSpace(v)})
		}
		return kv, nil, errors.Join(errs...)
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, nil, fmt.Errorf("JSON spec: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("JSON spec: text after the object")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := obj[k]
		if string(v) == "null" {
			continue
		}
		if k == "prefix_buckets" {
			if buckets, err = decodeBuckets(v); err != nil {
				return nil, nil, err
			}
			if buckets == nil {
				buckets = []PrefixBucket{}
			}
			continue
		}
		if len(v) == 0 || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
			return nil, nil, fmt.Errorf("%s: want a number, got %s", k, v)
		}
		kv = append(kv, [2]string{k, string(v)})
	}
	return kv, buckets, nil
}

func decodeBuckets(raw json.RawMessage) ([]PrefixBucket, error) {
	var in []struct {
		Weight *int `json:"bucket_weight"`
		Count  *int `json:"prefix_count"`
		Tokens *int `json:"prefix_tokens"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("prefix_buckets: want [{\"bucket_weight\":W,\"prefix_count\":C,\"prefix_tokens\":T},...]: %w", err)
	}
	out := make([]PrefixBucket, 0, len(in))
	for _, b := range in {
		p := PrefixBucket{Weight: 100, Count: 1}
		if b.Weight != nil {
			p.Weight = *b.Weight
		}
		if b.Count != nil {
			p.Count = *b.Count
		}
		if b.Tokens != nil {
			p.Tokens = *b.Tokens
		}
		out = append(out, p)
	}
	return out, nil
}
