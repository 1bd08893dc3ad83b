package workload

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/jsonscan"
)

// csvFile reads a header-led CSV trace whose columns are found by name.
// Trace CSVs hold numbers, dates and short labels, never commas inside a
// field, so a line is split on commas; a field wrapped in double quotes is
// unwrapped.
type csvFile struct {
	*lineFile
	kind   string
	header []string // as written
	cols   map[string]int
	fields [][]byte // reused per line
}

// normName folds a column name for matching: "Request tokens",
// "request_tokens" and "RequestTokens" are the same column.
func normName(s string) string {
	s = strings.ToLower(strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"`)))
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
}

func openCSV(kind, path string, opts OpenOptions) (*csvFile, error) {
	l, err := openLines(kind, path, opts)
	if err != nil {
		return nil, err
	}
	head, ok, err := l.next()
	if err == nil && !ok {
		err = errors.New("empty file")
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s %s: %w", kind, path, err)
	}
	c := &csvFile{lineFile: l, kind: kind, cols: map[string]int{}}
	head = bytes.TrimPrefix(bytes.TrimRight(head, "\r"), []byte("\ufeff"))
	for i, name := range strings.Split(string(head), ",") {
		c.header = append(c.header, strings.TrimSpace(name))
		if _, dup := c.cols[normName(name)]; !dup {
			c.cols[normName(name)] = i
		}
	}
	return c, nil
}

// col returns the index of the first of names present, or -1.
func (c *csvFile) col(names ...string) int {
	for _, n := range names {
		if i, ok := c.cols[normName(n)]; ok {
			return i
		}
	}
	return -1
}

// require closes the file and returns an error naming the missing columns.
func (c *csvFile) require(idx []int, names ...string) error {
	var missing []string
	for i, at := range idx {
		if at < 0 {
			missing = append(missing, names[i])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	c.Close()
	return fmt.Errorf("%s %s line 1: header %q lacks %s", c.kind, c.path, strings.Join(c.header, ","), strings.Join(missing, ", "))
}

// row returns the next data line split into fields; ok is false at the end.
func (c *csvFile) row() (fields [][]byte, ok bool, err error) {
	line, ok, err := c.next()
	if err != nil || !ok {
		return nil, ok, err
	}
	line = bytes.TrimRight(line, "\r")
	c.fields = c.fields[:0]
	for {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			c.fields = append(c.fields, unquote(line))
			break
		}
		c.fields = append(c.fields, unquote(line[:i]))
		line = line[i+1:]
	}
	return c.fields, true, nil
}

func unquote(f []byte) []byte {
	f = bytes.TrimSpace(f)
	if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
		f = f[1 : len(f)-1]
	}
	return f
}

// count parses a non-negative token count; whole-number floats ("12.0")
// are accepted, as pandas writes them.
func count(name string, f []byte) (int, error) {
	if v, ok := jsonscan.ParseInt(f); ok && v >= 0 && v <= maxTokens {
		return int(v), nil
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil || v < 0 || v > maxTokens || v != float64(int64(v)) {
		return 0, fmt.Errorf("%s %q: want a non-negative whole number", name, f)
	}
	return int(v), nil
}
