package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seeds are JSON texts, valid and not, at the edges the scanner decides:
// escapes and surrogates, invalid UTF-8, number grammar, literals,
// separators, nesting, whitespace. Every fuzz target starts from them.
var seeds = []string{
	`{}`, `[]`, ` { "a" : [ 1 , 2.5e3 , -0 , true , false , null , { } , [ ] ] } `,
	`{"a":1,"a":2}`, `{"A":1,"a":2}`, `{"k\u0065y":"v"}`,
	`"plain"`, `""`, `"tab\there"`, `"quote \" backslash \\ slash \/ \b\f\n\r\t"`,
	`"\u00e9\u4e2d\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`, `"\uD83D\uDE00"`,
	"\"caf\xc3\xa9\"", "\"\xff\xfe\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", "\"a\xffb\\n\"",
	`"\q"`, `"\u12"`, `"\u12g4"`, "\"a\x01b\"", "\"a\nb\"", `"unterminated`, `"\`,
	`0`, `-0`, `-0.0`, `1.5`, `1e5`, `1E+5`, `1e-5`, `-12.5e-3`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`,
	`123456789012345678`, `1234567890123456789`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775808`,
	`18446744073709551615`, `18446744073709551616`, `1e999`, `-1e999`, `1e-999`, `4294967296`,
	`true`, `false`, `null`, `tru`, `nul`, `falsey`, `nan`, `Infinity`,
	`[1,]`, `[,1]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `1 2`, `{"a":1}x`,
	"\t\r\n {\"a\":\n[1]\r}\t", "\v1", "\x00", "\xef\xbb\xbf{}",
	strings.Repeat("[", 100) + strings.Repeat("]", 100),
	`{"choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}`,
	`{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48, 4294967295]}`,
}

// trimSpace trims JSON's four whitespace bytes (bytes.TrimSpace trims
// more: \v, \f, Unicode spaces).
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// FuzzValid holds Skip and End to json.Valid: the same texts accepted, and
// Value returns the text without its surrounding whitespace.
func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(data)
		text, ok := s.Value()
		ok = ok && s.End()
		if want := json.Valid(data); ok != want {
			t.Fatalf("%q: scanner accepts %v, encoding/json %v (%v)", data, ok, want, s.Err())
		}
		if !ok {
			var se *SyntaxError
			if err := s.Err(); !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("%q: refused with error %v", data, err)
			}
			return
		}
		if !bytes.Equal(text, trimSpace(data)) {
			t.Fatalf("%q: Value %q", data, text)
		}
	})
}

// decode walks any value with the scanner's primitives into what
// encoding/json's Decoder with UseNumber builds.
func decode(s *Scanner) (any, bool) {
	switch c := s.Peek(); {
	case c == '{':
		m := map[string]any{}
		empty, ok := s.OpenObject()
		for ok && !empty {
			k, ok := s.Key()
			if !ok {
				return nil, false
			}
			v, ok := decode(s)
			if !ok {
				return nil, false
			}
			m[k.String()] = v // encoding/json keeps the last of duplicate keys
			var more bool
			more, ok = s.NextMember()
			if !ok {
				return nil, false
			}
			empty = !more
		}
		return m, ok
	case c == '[':
		a := []any{}
		empty, ok := s.OpenArray()
		for ok && !empty {
			v, ok := decode(s)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			var more bool
			if more, ok = s.NextElement(); !ok {
				return nil, false
			}
			empty = !more
		}
		return a, ok
	case c == '"':
		str, ok := s.Str()
		return str.String(), ok
	case c == 't' || c == 'f':
		return s.Bool()
	case c == 'n':
		isNull, ok := s.Null()
		return nil, isNull && ok
	}
	text, ok := s.Number()
	return json.Number(text), ok
}

// FuzzDecode walks texts with every stepping primitive (objects, keys,
// arrays, strings, literals, numbers) and holds the result to
// encoding/json's.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(data)
		got, ok := decode(&s)
		ok = ok && s.End()
		if want := json.Valid(data); ok != want {
			t.Fatalf("%q: scanner accepts %v, encoding/json %v (%v)", data, ok, want, s.Err())
		}
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%q: encoding/json: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n scanner       %#v\n encoding/json %#v", data, got, want)
		}
	})
}

// FuzzString holds Str, String and AppendTo to encoding/json's decoding
// into a string.
func FuzzString(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(data)
		str, ok := s.Str()
		ok = ok && s.End()
		var want string
		err := json.Unmarshal(data, &want)
		if wantOK := err == nil && bytes.HasPrefix(trimSpace(data), []byte(`"`)); ok != wantOK {
			t.Fatalf("%q: scanner accepts %v, encoding/json %v", data, ok, err)
		}
		if !ok {
			return
		}
		if got := str.String(); got != want {
			t.Fatalf("%q: String %q, encoding/json %q", data, got, want)
		}
		if got := str.AppendTo([]byte("x")); string(got) != "x"+want {
			t.Fatalf("%q: AppendTo %q, encoding/json %q", data, got, want)
		}
		if str.Plain() && string(str.Raw()) != want {
			t.Fatalf("%q: plain raw %q, encoding/json %q", data, str.Raw(), want)
		}
		if bytes.IndexByte(str.Raw(), '\\') >= 0 != str.Escaped() {
			t.Fatalf("%q: Escaped %v", data, str.Escaped())
		}
	})
}

// FuzzNumbers holds Int, Uint and ParseFloat to encoding/json's decoding
// into an int, a uint64 and a float64 (null aside: encoding/json leaves
// the target as it was), and ParseInt to strconv's.
func FuzzNumbers(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("007"))
	f.Add([]byte("-9223372036854775809"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '+' { // strconv takes a '+'; ParseInt, as JSON, does not
			want, err := strconv.ParseInt(string(data), 10, 64)
			if got, ok := ParseInt(data); ok != (err == nil) || (ok && got != want) {
				t.Fatalf("%q: ParseInt %d %v, strconv %d %v", data, got, ok, want, err)
			}
		}
		if string(trimSpace(data)) == "null" {
			return
		}
		agree(t, "Int", data, (*Scanner).Int, func(a, b int) bool { return a == b })
		agree(t, "Uint", data, (*Scanner).Uint, func(a, b uint64) bool { return a == b })
		agree(t, "ParseFloat", data, func(s *Scanner) (float64, bool) {
			text, ok := s.Number()
			if !ok {
				return 0, false
			}
			return ParseFloat(text)
		}, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) // -0 too
	})
}

// agree checks that read, then End, accepts data exactly when
// encoding/json decodes it into a T, and to a value same as its.
func agree[T any](t *testing.T, name string, data []byte, read func(*Scanner) (T, bool), same func(a, b T) bool) {
	t.Helper()
	var want T
	err := json.Unmarshal(data, &want)
	s := New(data)
	got, ok := read(&s)
	if ok = ok && s.End(); ok != (err == nil) || (ok && !same(got, want)) {
		t.Fatalf("%q: %s %v %v, encoding/json %v %v", data, name, got, ok, want, err)
	}
}

// Objects and arrays nest exactly as deep as encoding/json allows, empty
// innermost containers included.
func TestMaxDepth(t *testing.T) {
	for _, c := range []struct{ open, inner, close string }{
		{"[", "", "]"}, {"[", "1", "]"}, {`{"a":`, "{}", "}"}, {`{"a":`, "[]", "}"},
	} {
		for _, depth := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1} {
			n := depth
			if c.inner == "{}" || c.inner == "[]" {
				n-- // the inner container is a level too
			}
			data := []byte(strings.Repeat(c.open, n) + c.inner + strings.Repeat(c.close, n))
			s := New(data)
			ok := s.Skip() && s.End()
			if want := json.Valid(data); ok != want || ok != (depth <= MaxDepth) {
				t.Errorf("%s%s%s nested %d deep: scanner %v, encoding/json %v (%v)", c.open, c.inner, c.close, depth, ok, want, s.Err())
			}
			if !ok && !strings.Contains(s.Err().Error(), "nested deeper than 10000") {
				t.Errorf("nested %d deep: %v", depth, s.Err())
			}
		}
	}
}

// Err names the offset, what was found and what was wanted; NewLine's
// errors call the end of the input the end of the line.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		line bool
		read func(*Scanner) bool
		want string
	}{
		{`{"a":1`, false, skipAll, `offset 6: unexpected end of input, want ',' or '}'`},
		{`{"a":1`, true, skipAll, `offset 6: unexpected end of line, want ',' or '}'`},
		{`[1,]`, false, skipAll, `offset 3: unexpected ']', want a JSON value`},
		{`{"a" 1}`, false, skipAll, `offset 5: unexpected '1', want ':'`},
		{`{1:2}`, false, skipAll, `offset 1: unexpected '1', want a string`},
		{`["a\qb"]`, false, skipAll, `offset 3: unexpected "\\q", want an escape: \" \\ \/ \b \f \n \r \t or \uXXXX`},
		{`"\u12x4"`, false, skipAll, `offset 1: unexpected "\\u12x4", want an escape: \" \\ \/ \b \f \n \r \t or \uXXXX`},
		{"\"a\nb\"", false, skipAll, `offset 2: unexpected '\n', want control characters escaped`},
		{`"abc`, false, skipAll, `offset 4: unexpected end of input, want '"'`},
		{`[tru]`, false, skipAll, `offset 1: unexpected "tru]", want true`},
		{`1 trailing`, false, skipAll, `offset 2: unexpected "trailing", text after the value`},
		{`-x`, false, skipAll, `offset 1: unexpected 'x', want a digit`},
		{`"1"`, false, func(s *Scanner) bool { _, ok := s.Number(); return ok }, `offset 0: unexpected '"', want a number`},
		{`1.e5`, false, skipAll, `offset 2: unexpected 'e', want a digit after '.'`},
		{`1e+`, false, skipAll, `offset 3: unexpected end of input, want an exponent's digits`},
		{"\xff", false, skipAll, `offset 0: unexpected byte 0xff, want a JSON value`},
		{`["x"]`, false, func(s *Scanner) bool { _, ok := s.OpenObject(); return ok }, `offset 0: unexpected '[', want '{'`},
		{`1.5`, false, func(s *Scanner) bool { _, ok := s.Int(); return ok }, `offset 0: unexpected "1.5", want an integer`},
		{`99999999999999999999`, false, func(s *Scanner) bool { _, ok := s.Int(); return ok }, `offset 0: unexpected "99999999999999999999", want an integer in int's range`},
		{` -1`, false, func(s *Scanner) bool { _, ok := s.Uint(); return ok }, `offset 1: unexpected '-', want an unsigned integer`},
		{`"x"`, false, func(s *Scanner) bool { _, ok := s.Bool(); return ok }, `offset 0: unexpected '"', want true or false`},
		{`nil`, false, func(s *Scanner) bool { _, ok := s.Null(); return ok }, `offset 0: unexpected "nil", want null`},
	} {
		s := New([]byte(c.in))
		if c.line {
			s = NewLine([]byte(c.in))
		}
		if c.read(&s) {
			t.Errorf("%q: read succeeded", c.in)
			continue
		}
		if err := s.Err(); err == nil || err.Error() != c.want {
			t.Errorf("%q:\n err  %v\n want %s", c.in, err, c.want)
		}
	}
	s := New([]byte(`{}`))
	if !skipAll(&s) || s.Err() != nil {
		t.Errorf("valid input: %v", s.Err())
	}
	var zero Scanner
	if zero.Skip() || zero.Err().Error() != "offset 0: unexpected end of input, want a JSON value" {
		t.Errorf("zero Scanner: %v", zero.Err())
	}
}

func skipAll(s *Scanner) bool { return s.Skip() && s.End() }

// A failed Int or Uint consumes nothing, so the caller can read the same
// number another way; Pos and Value give the offsets editors need.
func TestPositions(t *testing.T) {
	s := New([]byte(` [ 12.0 , {"k" : "v"} ] `))
	if _, ok := s.OpenArray(); !ok {
		t.Fatal(s.Err())
	}
	if _, ok := s.Uint(); ok {
		t.Fatal("Uint took 12.0")
	}
	if _, ok := s.Int(); ok {
		t.Fatal("Int took 12.0")
	}
	if text, ok := s.Number(); !ok || string(text) != "12.0" {
		t.Fatalf("Number after the failed reads: %q %v", text, ok)
	}
	if more, ok := s.NextElement(); !more || !ok {
		t.Fatal(s.Err())
	}
	s.Peek()
	at := s.Pos()
	text, ok := s.Value()
	if !ok || string(text) != `{"k" : "v"}` || at != 10 || s.Pos() != at+len(text) {
		t.Fatalf("Value %q at %d, Pos %d", text, at, s.Pos())
	}
	if more, ok := s.NextElement(); more || !ok || !s.End() {
		t.Fatal("the array does not end where it should")
	}
}

// Raw strings alias the input with their capacity capped: appending to one
// never writes into the text after it.
func TestRawCapped(t *testing.T) {
	in := []byte(`["ab","cd"]`)
	s := New(in)
	s.OpenArray()
	str, _ := s.Str()
	_ = append(str.Raw(), 'X')
	if string(in) != `["ab","cd"]` {
		t.Fatalf("input changed: %s", in)
	}
	if str, ok := s.StrOrNull(); ok || str.Raw() != nil {
		t.Fatal("StrOrNull read past the comma")
	}
	s = New([]byte(`null`))
	if str, ok := s.StrOrNull(); !ok || str.Raw() != nil || str.String() != "" {
		t.Fatalf("null: %q %v", str.Raw(), ok)
	}
	s = New([]byte(`""`))
	if str, ok := s.StrOrNull(); !ok || str.Raw() == nil {
		t.Fatal(`"" reads as null`)
	}
}

// BenchmarkSkip checks whole texts — a chat chunk and a Mooncake trace
// line — against json.Valid on the same bytes.
func BenchmarkSkip(b *testing.B) {
	for _, c := range []struct{ name, text string }{
		{"chunk", seeds[len(seeds)-2]},
		{"mooncake-line", `{"timestamp": 0, "input_length": 7322, "output_length": 490, "hash_ids": [0, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]}`},
	} {
		data := []byte(c.text)
		b.Run(c.name+"/jsonscan", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s := New(data)
				if !s.Skip() || !s.End() {
					b.Fatal(s.Err())
				}
			}
		})
		b.Run(c.name+"/encoding-json-valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if !json.Valid(data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
