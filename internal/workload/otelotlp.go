package workload

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
)

// otlpItem is one OTLP span with its place in the document.
type otlpItem struct {
	span       *otlpSpan // reused: valid until the next span
	pos        int64     // byte offset just before the span
	rs, ss, sp int       // resourceSpans, scopeSpans and spans indices
	err        error
	fatal      bool // the document cannot be read on
	inSpan     bool // the error is in a span (rs, ss, sp say which)
}

func (it *otlpItem) where() string {
	return fmt.Sprintf("resourceSpans[%d].scopeSpans[%d].spans[%d]", it.rs, it.ss, it.sp)
}

// readOTLP reads one OTLP span.
func (o *OTel) readOTLP() error {
	it, ok := o.nextOTLP()
	if !ok {
		for _, c := range o.openByStart() {
			o.close(c)
		}
		clear(o.open)
		o.eof = true
		return nil
	}
	if it.err != nil {
		line := o.lineAt(it.pos)
		if it.fatal && !it.inSpan {
			return fmt.Errorf("otel %s line %d: %w", o.path, line, jsonError(it.err))
		}
		if it.fatal {
			return fmt.Errorf("otel %s line %d: %s: %w", o.path, line, it.where(), jsonError(it.err))
		}
		return o.invalidAt(line, fmt.Errorf("%s: %w", it.where(), jsonError(it.err)))
	}
	js := it.span.jsonSpan()
	s, err := o.sd.readSpan(&js, 0, "")
	if err != nil {
		return o.invalidAt(o.lineAt(it.pos), fmt.Errorf("%s: %w", it.where(), err))
	}
	s.line = -int(it.pos) - 1 // the line is found from the offset when needed
	key := s.traceID
	if key == "" {
		key = s.spanID
	}
	if key == "" {
		key = "offset " + strconv.FormatInt(it.pos, 10)
	}
	c := o.open[key]
	if c == nil {
		c = &otelConv{key: key, minStart: s.start}
		o.open[key] = c
	}
	c.spans = append(c.spans, s)
	c.lastEnd = max(c.lastEnd, s.end())
	c.minStart = min(c.minStart, s.start)
	o.maxEnd = max(o.maxEnd, s.end())
	if s.parentID == "" && s.start <= c.minStart && s.end() >= c.lastEnd {
		// The root span, covering all the trace read so far: SDKs end a
		// span after its children, so the trace is whole. (A span that
		// comes later continues the same session.)
		delete(o.open, key)
		o.close(c)
	}
	if o.spansIn++; o.spansIn%256 == 0 {
		o.closeQuiet()
	}
	return nil
}

// closeQuiet closes the traces whose last span ended otlpQuiet before the
// latest end read, and releases calls that start before every open trace
// and before that horizon.
func (o *OTel) closeQuiet() {
	horizon := o.maxEnd - otlpQuiet
	var quiet []*otelConv
	mark := horizon
	for k, c := range o.open {
		if c.lastEnd < horizon {
			quiet = append(quiet, c)
			delete(o.open, k)
		} else {
			mark = min(mark, c.minStart)
		}
	}
	sort.Slice(quiet, func(i, j int) bool { return quiet[i].minStart < quiet[j].minStart })
	for _, c := range quiet {
		o.close(c)
	}
	for k, st := range o.cont {
		if st.lastEnd < horizon-otlpQuiet {
			delete(o.cont, k) // a trace quiet this long is taken as over
		}
	}
	if !o.hasMark || mark > o.mark {
		o.mark, o.hasMark = mark, true
	}
}

// openByStart returns the open traces by their first start.
func (o *OTel) openByStart() []*otelConv {
	out := make([]*otelConv, 0, len(o.open))
	for _, c := range o.open {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].minStart < out[j].minStart })
	return out
}

// otlpSpans walks OTLP export requests, yielding spans one at a time
// without holding the document.
func (o *OTel) otlpSpans(yield func(otlpItem) bool) {
	dec := o.dec
	fail := func(err error) { yield(otlpItem{pos: dec.InputOffset(), err: err, fatal: true}) }
	expect := func(d json.Delim, what string) bool {
		t, err := dec.Token()
		if err != nil || t != d {
			if err == nil {
				err = fmt.Errorf("want %s, got %v", what, t)
			}
			fail(err)
			return false
		}
		return true
	}
	skip := func() bool {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			fail(err)
			return false
		}
		return true
	}
	// each calls f for every element of an array, or skips a null.
	each := func(f func(i int) bool) bool {
		t, err := dec.Token()
		if err != nil {
			fail(err)
			return false
		}
		if t == nil {
			return true
		}
		if t != json.Delim('[') {
			fail(fmt.Errorf("want an array, got %v", t))
			return false
		}
		for i := 0; dec.More(); i++ {
			if !f(i) {
				return false
			}
		}
		return expect(']', "]")
	}
	// fields calls f with every key of an object; f reads the value.
	fields := func(f func(key string) bool) bool {
		if !expect('{', "an object") {
			return false
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				fail(err)
				return false
			}
			if !f(t.(string)) {
				return false
			}
		}
		return expect('}', "}")
	}
	for {
		if _, err := dec.Token(); err == io.EOF {
			return
		} else if err != nil {
			fail(err)
			return
		}
		// The opening brace is read: walk the request's keys.
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				fail(err)
				return
			}
			if t != "resourceSpans" {
				if !skip() {
					return
				}
				continue
			}
			ok := each(func(rs int) bool {
				return fields(func(k string) bool {
					if k != "scopeSpans" && k != "instrumentationLibrarySpans" {
						return skip()
					}
					return each(func(ss int) bool {
						return fields(func(k string) bool {
							if k != "spans" {
								return skip()
							}
							return each(func(sp int) bool {
								it := otlpItem{span: &o.otlpBuf, pos: dec.InputOffset(), rs: rs, ss: ss, sp: sp, inSpan: true}
								it.span.reset()
								if err := dec.Decode(it.span); err != nil {
									// A value read whole but not a span (a
									// wrong type) can be skipped; a value the
									// decoder could not read through (bad
									// syntax, a cut file) ends the document.
									it.err, it.fatal = err, dec.InputOffset() == it.pos
									yield(it)
									return !it.fatal
								}
								return yield(it)
							})
						})
					})
				})
			})
			if !ok {
				return
			}
		}
		if !expect('}', "}") {
			return
		}
	}
}

// lineAt is the line of the first non-space byte at or after offset pos.
func (o *OTel) lineAt(pos int64) int { return lineAtOffset(o.path, pos) }

// lineAtOffset is the line of the file at path that holds the first byte
// at or after offset pos that is not white space or a comma (a JSON
// decoder's offset before a value). Used for errors only: it reads the file
// from the start.
func lineAtOffset(path string, pos int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	r := bufio.NewReader(f)
	line := 1
	for i := int64(0); ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return line
		}
		if i >= pos && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ',' {
			return line
		}
		if c == '\n' {
			line++
		}
	}
}

// invalidAt reports a bad OTLP span at line: an error, or a count when
// skipping.
func (o *OTel) invalidAt(line int, reason error) error {
	if o.skip {
		o.skipped++
		return nil
	}
	return fmt.Errorf("otel %s line %d: %w", o.path, line, reason)
}

// lineOf is the line a span was read from.
func (o *OTel) lineOf(s *otelSpan) int {
	if s.line < 0 {
		return o.lineAt(int64(-s.line - 1))
	}
	return s.line
}
