package workload

import (
	"fmt"
	"time"
)

// timeOrder watches the timestamps of a trace read row by row for ones
// that go backwards: earlier than a row above them. Traces are streamed,
// never sorted, and the engine sends rows in file order, so such a row
// cannot go out before the row above it was due: it is sent when reached,
// late by up to how far it goes back, and that wait is recorded apart
// (engine.Result.OrderWait) rather than counted as client lag.
//
// Every timestamped reader warns through it in the same words, by way of
// lineFile.timestamp and lineFile.orderSummary: once as soon as the first
// such row is read (its line and its timestamp as the file writes it), and
// at the end with the count. The zero value is ready.
type timeOrder struct {
	seen       bool
	latest     time.Duration // the latest offset read so far
	latestLine int           // the line that holds it
	count      int           // rows earlier than latest when read
	firstLine  int           // the first such row's line
	firstText  string        // its timestamp as written in the file
	firstBy    time.Duration // how far it is before latest
}

// row notes the timestamp of the row at line of the kind trace at path:
// off is its offset from the trace's first row (negative when it precedes
// it), text the timestamp as written. It returns the warning to give at
// once for the first row that goes backwards, else "".
func (o *timeOrder) row(kind, path string, off time.Duration, line int, text []byte) string {
	if !o.seen || off >= o.latest {
		o.seen, o.latest, o.latestLine = true, off, line
		return ""
	}
	o.count++
	if o.count > 1 {
		return ""
	}
	o.firstLine, o.firstText, o.firstBy = line, string(text), o.latest-off
	// Said at once: a replay of an unsorted file sends these rows late,
	// and the user should know before it starts, not after.
	return fmt.Sprintf("%s %s line %d: timestamp %s is %v before line %d's; rows are sent in file order, so it goes out late (a summary follows at the end)",
		kind, path, line, o.firstText, o.firstBy, o.latestLine)
}

// summary is the end-of-file warning, "" when no timestamp went backwards.
// note, when not empty, is said after the count, in parentheses.
func (o *timeOrder) summary(kind, path, note string) string {
	if o.count == 0 {
		return ""
	}
	if note != "" {
		note = " (" + note + ")"
	}
	return fmt.Sprintf("%s %s: timestamps go backwards %d times%s, first at line %d (%s, %v before an earlier row): "+
		"rows are sent in file order, so each such row is sent when reached, late by up to how far it goes back; "+
		"that wait is reported as order wait, not client lag. Sort the file by time to replay every row at its own time",
		kind, path, o.count, note, o.firstLine, o.firstText, o.firstBy)
}

// timestamp notes the current line's timestamp (see timeOrder.row) and
// gives the first backwards step's warning at once.
func (l *lineFile) timestamp(off time.Duration, text []byte) {
	if w := l.order.row(l.kind, l.path, off, l.line, text); w != "" {
		l.addWarning(w)
	}
}

// orderSummary adds the end-of-file warning about timestamps that went
// backwards, if any did; note is said after the count. Call it once.
func (l *lineFile) orderSummary(note string) {
	if w := l.order.summary(l.kind, l.path, note); w != "" {
		l.addWarning(w)
	}
}
