package workload

import (
	"fmt"
	"math"

	"github.com/reprise-llm/reprise/internal/jsonscan"
)

// The trace formats' value rules, read with internal/jsonscan: trace
// lines are flat objects of numbers, strings and arrays of integers, and
// encoding/json's reflection made Mooncake parsing three times slower than
// the 500,000 records/s a replay of a large trace needs. What these accept,
// the formats' reference decoding (encoding/json into float64s, then the
// checks below) accepts with the same values: FuzzMooncake holds them to
// it.

// number reads a number as float64, and its text as written.
func number(s *jsonscan.Scanner) (float64, []byte, error) {
	text, ok := s.Number()
	if !ok {
		return 0, nil, s.Err()
	}
	f, ok := jsonscan.ParseFloat(text)
	if !ok {
		return 0, nil, fmt.Errorf("number %s out of range", text)
	}
	return f, text, nil
}

// wholeNumber reads a number that must be a whole number (12, 12.0,
// 1.2e1) exactly representable in a float64.
func wholeNumber(s *jsonscan.Scanner) (int64, error) {
	text, ok := s.Number()
	if !ok {
		return 0, s.Err()
	}
	if v, ok := jsonscan.ParseInt(text); ok && v >= -1<<53 && v <= 1<<53 {
		return v, nil // the common case, without a float's detour
	}
	f, ok := jsonscan.ParseFloat(text)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: want a whole number", text)
	}
	return int64(f), nil
}

// readHashIDs reads an array of whole numbers in [0, 2^32), appending to dst.
func readHashIDs(s *jsonscan.Scanner, dst []uint32) ([]uint32, error) {
	empty, ok := s.OpenArray()
	for ok && !empty {
		// Plain digits are most of a Mooncake line: Uint reads them in
		// one pass, and declines anything else (12.0, -1) untouched.
		v, plain := s.Uint()
		if !plain {
			w, err := wholeNumber(s)
			if err != nil {
				return dst, err
			}
			if w < 0 {
				return dst, fmt.Errorf("%d: want an id in [0, 2^32)", w)
			}
			v = uint64(w)
		}
		if v > math.MaxUint32 {
			return dst, fmt.Errorf("%d: want an id in [0, 2^32)", v)
		}
		dst = append(dst, uint32(v))
		var more bool
		more, ok = s.NextElement()
		empty = !more
	}
	if !ok {
		return dst, s.Err()
	}
	return dst, nil
}

// str reads a string, decoded as encoding/json decodes it.
func str(s *jsonscan.Scanner) (string, error) {
	t, ok := s.Str()
	if !ok {
		return "", s.Err()
	}
	return t.String(), nil
}
