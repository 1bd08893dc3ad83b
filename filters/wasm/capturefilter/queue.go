package capturefilter

// queue holds encoded record lines waiting for a tick, bounded in lines
// and bytes: a record that does not fit is refused (the caller counts it
// dropped), so a slow or dead collector costs bounded memory and never
// blocks a request.
type queue struct {
	lines    [][]byte
	head     int // lines[head:] are queued
	bytes    int // bytes queued
	maxLines int
	maxBytes int
}

func newQueue(maxLines, maxBytes int) queue {
	return queue{maxLines: maxLines, maxBytes: maxBytes}
}

// len is the number of lines queued.
func (q *queue) len() int { return len(q.lines) - q.head }

// push queues line (which it keeps); false when that would pass a bound.
func (q *queue) push(line []byte) bool {
	if q.len() >= q.maxLines || q.bytes+len(line) > q.maxBytes {
		return false
	}
	if q.head > 0 && q.head >= len(q.lines)/2 {
		// Move the live lines to the front so the backing array does not
		// grow with everything ever queued.
		n := copy(q.lines, q.lines[q.head:])
		clear(q.lines[n:])
		q.lines, q.head = q.lines[:n], 0
	}
	q.lines = append(q.lines, line)
	q.bytes += len(line)
	return true
}

// take appends up to maxLines lines, and no more than maxBytes bytes unless
// the first line alone is larger, to dst and removes them from the queue.
// It returns dst and the number of lines taken.
func (q *queue) take(dst []byte, maxLines, maxBytes int) ([]byte, int) {
	n := 0
	for q.head < len(q.lines) && n < maxLines {
		line := q.lines[q.head]
		if n > 0 && len(dst)+len(line) > maxBytes {
			break
		}
		dst = append(dst, line...)
		q.bytes -= len(line)
		q.lines[q.head] = nil // the batch copied it: free it
		q.head++
		n++
	}
	if q.head == len(q.lines) {
		q.lines, q.head = q.lines[:0], 0
	}
	return dst, n
}
