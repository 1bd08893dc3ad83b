// Package openai holds the OpenAI-compatible wire format as Reprise sees it:
// endpoint classification, the request fields a capture needs, the
// Server-Sent Events framing of streamed responses, and the chunk/usage
// payloads inside them. It imports no net/http so that every front end
// (reverse proxy, ext_proc server, wasm filter) and the replay client share
// one parser.
package openai

import (
	"bytes"
)

// Event is one Server-Sent Event as defined by the WHATWG HTML standard,
// section 9.2 "Server-sent events": the fields of one block of lines ended by
// a blank line. Data joins multiple data lines with "\n".
type Event struct {
	Event string
	Data  []byte
	ID    string
}

// Decoder splits a byte stream into Server-Sent Events incrementally. Feed it
// bytes as they arrive (in any fragmentation) and call Next until it reports
// no complete event. It accepts LF, CRLF and CR line endings, ignores comment
// lines (":" prefix), and strips one leading space after the field colon.
//
// The zero value is ready to use. Data slices returned by Next stay valid
// until the next call to Feed.
type Decoder struct {
	buf   []byte // unconsumed input
	off   int    // start of unconsumed input in buf
	cur   Event
	has   bool   // cur has at least one field
	lines int    // data lines in cur
	first []byte // cur's only data line, aliasing buf unless owned
	owned bool   // first is a copy, safe across Feed
	data  []byte // cur's data lines joined, once it has two
	lastC bool   // previous Feed ended with '\r' (a following '\n' belongs to it)
	skip  bool   // discarding the rest of an overlong line
	// dropEv: cur's data lines together outgrew MaxLine; the event is
	// dropped at its end (counted once in Overflows).
	dropEv bool
	// MaxLine bounds a single line, and the joined data of one event;
	// longer lines are dropped, and so are events with more data, each
	// counted in Overflows, so that a misbehaving upstream cannot grow
	// memory unboundedly. Zero means 1 MiB.
	MaxLine   int
	Overflows int
}

// Feed appends bytes read from the stream.
func (d *Decoder) Feed(p []byte) {
	if d.lines == 1 && !d.owned {
		// The event in progress has one data line aliasing buf, which is
		// about to be reused: own it (only when an event spans Feeds).
		d.first, d.owned = append([]byte{}, d.first...), true
	}
	if d.off > 0 && d.off == len(d.buf) {
		d.buf = d.buf[:0]
		d.off = 0
	} else if d.off > 4096 && d.off > len(d.buf)/2 {
		n := copy(d.buf, d.buf[d.off:])
		d.buf = d.buf[:n]
		d.off = 0
	}
	d.buf = append(d.buf, p...)
}

// Next returns the next complete event. ok is false when more input is needed.
//
// Lines longer than MaxLine are dropped whole (and counted in Overflows)
// whether they arrive in one Feed or in many, so the events returned never
// depend on how the stream was fragmented.
func (d *Decoder) Next() (ev Event, ok bool) {
	max := d.maxLine()
	for {
		rest := d.buf[d.off:]
		if d.lastC && len(rest) > 0 {
			d.lastC = false
			if rest[0] == '\n' {
				d.off++
				continue
			}
		}
		// Two vectorised scans beat IndexAny's byte loop: the first '\n',
		// then a '\r' before it.
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = bytes.IndexByte(rest, '\r')
		} else if j := bytes.IndexByte(rest[:i], '\r'); j >= 0 {
			i = j
		}
		if i < 0 {
			if !d.skip && len(rest) > max {
				d.Overflows++
				d.skip = true
			}
			if d.skip {
				d.off = len(d.buf)
			}
			return Event{}, false
		}
		line := rest[:i]
		adv := i + 1
		if rest[i] == '\r' {
			if i+1 < len(rest) {
				if rest[i+1] == '\n' {
					adv++
				}
			} else {
				d.lastC = true
			}
		}
		d.off += adv
		if d.skip {
			// The end of a line already counted as an overflow.
			d.skip = false
			continue
		}
		if len(line) > max {
			d.Overflows++
			continue
		}
		if len(line) == 0 {
			if d.dropEv {
				d.reset() // its data outgrew MaxLine: dropped, counted
				continue
			}
			if d.has {
				return d.dispatch(), true
			}
			continue
		}
		d.field(line, max)
	}
}

func (d *Decoder) maxLine() int {
	if d.MaxLine <= 0 {
		return 1 << 20
	}
	return d.MaxLine
}

// dispatch returns the event being built and starts a new one. A single
// data line (the common case) aliases the input buffer, which only Feed
// reuses; joined lines are a buffer handed to the caller and never reused.
func (d *Decoder) dispatch() Event {
	ev := d.cur
	switch {
	case d.lines == 1:
		ev.Data = d.first
	case d.lines > 1:
		ev.Data = d.data
	}
	d.reset()
	return ev
}

// reset starts a new event.
func (d *Decoder) reset() {
	d.cur, d.first, d.owned, d.data, d.lines, d.has, d.dropEv = Event{}, nil, false, nil, 0, false, false
}

// Flush returns an event that was not terminated by a blank line, as happens
// when a stream ends abruptly; call it after Next reports no complete event,
// until it reports false. Per the standard such an event is discarded by
// browsers; Reprise reports it so that a capture can still count the tokens
// it carried. An unterminated final line counts as a line.
func (d *Decoder) Flush() (ev Event, ok bool) {
	if ev, ok := d.Next(); ok {
		return ev, true
	}
	// Next consumed every terminated line, so rest holds at most the start
	// of one line without its end.
	if rest := d.buf[d.off:]; len(rest) > 0 {
		if !d.skip {
			if max := d.maxLine(); len(rest) > max {
				d.Overflows++
			} else {
				d.field(rest, max)
			}
		}
		d.off = len(d.buf)
	}
	d.skip, d.lastC = false, false
	if d.dropEv {
		d.reset()
		return Event{}, false
	}
	if !d.has {
		return Event{}, false
	}
	return d.dispatch(), true
}

// field applies one line of the event being built. max bounds the event's
// joined data as it bounds a line.
func (d *Decoder) field(line []byte, max int) {
	if len(line) == 0 || line[0] == ':' {
		return // comment
	}
	name, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if d.dropEv {
			return
		}
		size := 0 // the joined data with this line
		switch d.lines {
		case 0:
			size = len(value)
		case 1:
			size = len(d.first) + 1 + len(value)
		default:
			size = len(d.data) + 1 + len(value)
		}
		if size > max {
			// Like an overlong line: drop the event, keep memory bounded.
			d.Overflows++
			d.dropEv, d.has = true, true
			d.first, d.owned, d.data = nil, false, nil
			return
		}
		switch d.lines {
		case 0:
			if value == nil {
				value = []byte{} // "data" without a colon: empty, not absent
			}
			d.first = value[:len(value):len(value)]
		case 1:
			d.data = append(append(append([]byte(nil), d.first...), '\n'), value...)
		default:
			d.data = append(append(d.data, '\n'), value...)
		}
		d.lines++
		d.has = true
	case "event":
		d.cur.Event = string(value)
		d.has = true
	case "id":
		d.cur.ID = string(value)
		d.has = true
	case "retry":
		d.has = true
	}
}
