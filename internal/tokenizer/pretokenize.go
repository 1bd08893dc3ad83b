package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization.
type normalizer interface{ normalize(string) string }

type normFunc func(string) string

func (f normFunc) normalize(s string) string { return f(s) }

type component struct {
	Type string `json:"type"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		component
		Normalizers []json.RawMessage `json:"normalizers"`
		Prepend     string            `json:"prepend"`
		Pattern     pattern           `json:"pattern"`
		Content     string            `json:"content"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "NFC":
		return normFunc(norm.NFC.String), nil
	case "NFD":
		return normFunc(norm.NFD.String), nil
	case "NFKC":
		return normFunc(norm.NFKC.String), nil
	case "NFKD":
		return normFunc(norm.NFKD.String), nil
	case "Lowercase":
		return normFunc(strings.ToLower), nil
	case "Prepend":
		p := c.Prepend
		return normFunc(func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}), nil
	case "Replace":
		if c.Pattern.String == nil {
			return nil, fmt.Errorf("Replace with a regex pattern: %w", errUnsupported)
		}
		from, to := *c.Pattern.String, c.Content
		return normFunc(func(s string) string { return strings.ReplaceAll(s, from, to) }), nil
	case "Sequence":
		var seq []normalizer
		for i, r := range c.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("normalizers[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return normFunc(func(s string) string {
			for _, n := range seq {
				s = n.normalize(s)
			}
			return s
		}), nil
	}
	return nil, fmt.Errorf("type %q: %w", c.Type, errUnsupported)
}

// pattern is a Split or Replace pattern: {"Regex": …} or {"String": …}.
type pattern struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

// preTokenizer splits every piece further; first says the input's first
// piece starts the text.
type preTokenizer interface {
	split(pieces []string, first bool) ([]string, error)
}

func parsePreTokenizer(raw json.RawMessage) ([]preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		component
		Pretokenizers    []json.RawMessage `json:"pretokenizers"`
		Pattern          pattern           `json:"pattern"`
		Behavior         string            `json:"behavior"`
		Invert           bool              `json:"invert"`
		AddPrefixSpace   bool              `json:"add_prefix_space"`
		UseRegex         *bool             `json:"use_regex"`
		Replacement      string            `json:"replacement"`
		PrependScheme    string            `json:"prepend_scheme"`
		Split            *bool             `json:"split"`
		IndividualDigits bool              `json:"individual_digits"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var out []preTokenizer
		for i, r := range c.Pretokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("pretokenizers[%d]: %w", i, err)
			}
			out = append(out, p...)
		}
		return out, nil
	case "Split":
		if c.Invert {
			return nil, fmt.Errorf("Split with invert: %w", errUnsupported)
		}
		var expr string
		switch {
		case c.Pattern.Regex != nil:
			expr = *c.Pattern.Regex
		case c.Pattern.String != nil:
			expr = regexp2.Escape(*c.Pattern.String)
		default:
			return nil, fmt.Errorf("Split without a pattern")
		}
		re, err := regexp2.Compile(expr, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("Split pattern: %w", err)
		}
		if c.Behavior != "Isolated" && c.Behavior != "Removed" {
			return nil, fmt.Errorf("Split behavior %q: %w", c.Behavior, errUnsupported)
		}
		return []preTokenizer{&splitter{re: re, removed: c.Behavior == "Removed"}}, nil
	case "ByteLevel":
		b := &byteLevel{addPrefixSpace: c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			b.re = regexp2.MustCompile(gpt2Pattern, regexp2.None)
		}
		return []preTokenizer{b}, nil
	case "Metaspace":
		m := &metaspace{replacement: c.Replacement, scheme: c.PrependScheme, splitOn: c.Split == nil || *c.Split}
		if m.replacement == "" {
			m.replacement = "▁"
		}
		if m.scheme == "" {
			m.scheme = "always"
			if !c.AddPrefixSpace && strings.Contains(string(raw), "add_prefix_space") {
				m.scheme = "never"
			}
		}
		return []preTokenizer{m}, nil
	case "Digits":
		return []preTokenizer{digits{individual: c.IndividualDigits}}, nil
	case "WhitespaceSplit":
		return []preTokenizer{whitespaceSplit{}}, nil
	}
	return nil, fmt.Errorf("type %q: %w", c.Type, errUnsupported)
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// gpt2Pattern is GPT-2's pre-tokenization regex, which ByteLevel applies
// when use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// splitter is Split with behavior Isolated (matches and the text between
// them become pieces) or Removed (only the text between).
type splitter struct {
	re      *regexp2.Regexp
	removed bool
}

func (s *splitter) split(pieces []string, _ bool) ([]string, error) {
	var out []string
	for _, p := range pieces {
		locs, err := s.re.FindAllStringIndex(p, -1)
		if err != nil {
			return nil, err
		}
		last := 0
		for _, l := range locs {
			if l[0] > last {
				out = append(out, p[last:l[0]])
			}
			if !s.removed && l[1] > l[0] {
				out = append(out, p[l[0]:l[1]])
			}
			last = l[1]
		}
		if last < len(p) {
			out = append(out, p[last:])
		}
	}
	return out, nil
}

// byteLevel maps every byte to GPT-2's printable alphabet, after splitting
// with GPT-2's regex when re is set.
type byteLevel struct {
	addPrefixSpace bool
	re             *regexp2.Regexp
}

var byteRunes = func() (m [256]rune) {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}()

func (b *byteLevel) split(pieces []string, first bool) ([]string, error) {
	if b.addPrefixSpace && first && len(pieces) > 0 && !strings.HasPrefix(pieces[0], " ") {
		pieces = append([]string{" " + pieces[0]}, pieces[1:]...)
	}
	if b.re != nil {
		var err error
		if pieces, err = (&splitter{re: b.re}).split(pieces, first); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(pieces))
	var sb strings.Builder
	for i, p := range pieces {
		sb.Reset()
		for j := 0; j < len(p); j++ {
			sb.WriteRune(byteRunes[p[j]])
		}
		out[i] = sb.String()
	}
	return out, nil
}

// metaspace replaces spaces with the replacement (▁), prepends one per its
// scheme, and splits before each replacement when split is set.
type metaspace struct {
	replacement, scheme string
	splitOn             bool
}

func (m *metaspace) split(pieces []string, first bool) ([]string, error) {
	var out []string
	for i, p := range pieces {
		p = strings.ReplaceAll(p, " ", m.replacement)
		if (m.scheme == "always" || (m.scheme == "first" && first && i == 0)) && !strings.HasPrefix(p, m.replacement) {
			p = m.replacement + p
		}
		if !m.splitOn {
			out = append(out, p)
			continue
		}
		// Split before every replacement (MergedWithNext).
		start := 0
		for j := len(m.replacement); j <= len(p)-len(m.replacement); {
			if strings.HasPrefix(p[j:], m.replacement) {
				if j > start {
					out = append(out, p[start:j])
				}
				start = j
				j += len(m.replacement)
				continue
			}
			_, w := utf8.DecodeRuneInString(p[j:])
			j += w
		}
		if start < len(p) {
			out = append(out, p[start:])
		}
	}
	return out, nil
}

// digits splits digit runs from other text (each digit alone when individual).
type digits struct{ individual bool }

func (d digits) split(pieces []string, _ bool) ([]string, error) {
	var out []string
	for _, p := range pieces {
		start, prevDigit := 0, false
		for j, r := range p {
			isDigit := unicode.IsDigit(r)
			if j > start && (isDigit != prevDigit || (isDigit && d.individual)) {
				out = append(out, p[start:j])
				start = j
			}
			prevDigit = isDigit
		}
		if start < len(p) {
			out = append(out, p[start:])
		}
	}
	return out, nil
}

// whitespaceSplit splits on whitespace, dropping it.
type whitespaceSplit struct{}

func (whitespaceSplit) split(pieces []string, _ bool) ([]string, error) {
	var out []string
	for _, p := range pieces {
		out = append(out, strings.Fields(p)...)
	}
	return out, nil
}
