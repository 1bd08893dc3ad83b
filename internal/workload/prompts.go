package workload

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Column names a prompt file may use, in order of preference: GuideLLM's
// column mapper defaults, plus the names Mooncake/AIPerf and OpenAI use.
var (
	textColumns     = []string{"prompt", "instruction", "question", "input", "context", "content", "conversation", "turn", "text", "text_input"}
	messagesColumns = []string{"messages", "chat_messages"}
	systemColumns   = []string{"system_prompt", "system", "prefix"}
	outputColumns   = []string{"output_tokens_count", "completion_tokens_count", "output_tokens", "output_length", "max_tokens"}
	promptColumns   = []string{"prompt_tokens_count", "input_tokens_count", "prompt_tokens", "input_length"}
	modelColumns    = []string{"model"}
)

// Prompts reads a file of prompts sent verbatim: JSONL, CSV or plain text,
// told apart by the file's extension.
//
//   - .jsonl (or .ndjson): one JSON object a line with the prompt text in
//     prompt (or instruction, question, input, context, content, text,
//     text_input) or a chat messages array in messages; or one JSON string
//     a line, the prompt itself.
//   - .csv: a header row naming the same columns; a messages cell holds
//     the array as JSON. Fields may be quoted (RFC 4180), so prompts may
//     hold commas, quotes and newlines.
//   - .txt: one prompt a line; empty lines are skipped.
//
// Optional columns: an output length (output_tokens_count,
// completion_tokens_count, output_tokens, output_length or max_tokens),
// forced as for traces; a system prompt (system_prompt, system, prefix),
// sent as a leading system message; the prompt's token count
// (prompt_tokens_count, input_tokens_count, prompt_tokens), recorded as
// the requested count; and model. Other columns are ignored. Offsets are
// all zero: the profile (constant, poisson, concurrent, …) schedules them.
type Prompts struct {
	path  string
	kind  string // "jsonl", "csv" or "txt"
	lines *lineFile
	csv   *csv.Reader
	f     *os.File
	cols  map[string]int // csv: column index by folded name
	n     int
	line  int // csv: line of the current record
	skip  bool
	skips int
}

var _ Source = (*Prompts)(nil)

// OpenPrompts opens a prompt file.
func OpenPrompts(path string, opts OpenOptions) (*Prompts, error) {
	p := &Prompts{path: path, skip: opts.SkipInvalid}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl", ".ndjson":
		p.kind = "jsonl"
	case ".txt", ".text":
		p.kind = "txt"
	case ".csv":
		p.kind = "csv"
	default:
		return nil, fmt.Errorf("prompts %s: extension %q: want .jsonl, .csv or .txt", path, ext)
	}
	if p.kind != "csv" {
		l, err := openLines("prompts", path, opts)
		if err != nil {
			return nil, err
		}
		p.lines = l
		return p, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	p.f = f
	br := bufio.NewReaderSize(f, 64<<10)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\ufeff")) {
		_, _ = br.Discard(3)
	}
	p.csv = csv.NewReader(br)
	p.csv.ReuseRecord = true
	head, err := p.csv.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file")
		}
		return nil, fmt.Errorf("prompts %s line 1: %w", path, err)
	}
	p.cols = map[string]int{}
	for i, name := range head {
		if _, dup := p.cols[normName(name)]; !dup {
			p.cols[normName(name)] = i
		}
	}
	if p.col(textColumns) < 0 && p.col(messagesColumns) < 0 {
		f.Close()
		return nil, fmt.Errorf("prompts %s line 1: header %q has no prompt column (%s) and no messages column", path, strings.Join(head, ","), strings.Join(textColumns, ", "))
	}
	return p, nil
}

// col returns the index of the first of names in the CSV header, or -1.
func (p *Prompts) col(names []string) int {
	for _, n := range names {
		if i, ok := p.cols[normName(n)]; ok {
			return i
		}
	}
	return -1
}

// promptRow is one prompt as read, before it becomes a Request.
type promptRow struct {
	text, system, model string
	messages            []byte
	output, prompt      int
}

// Next returns the next prompt.
func (p *Prompts) Next() (Request, error) {
	for {
		row, ok, err := p.read()
		if err != nil {
			var bad *badRow
			if !errors.As(err, &bad) {
				return Request{}, err
			}
			if !p.skip {
				return Request{}, fmt.Errorf("prompts %s line %d: %w", p.path, bad.line, bad.err)
			}
			p.skips++
			continue
		}
		if !ok {
			return Request{}, io.EOF
		}
		req := row.request(p.n)
		p.n++
		return req, nil
	}
}

// badRow is a malformed row: the caller stops or skips.
type badRow struct {
	line int
	err  error
}

func (b *badRow) Error() string { return fmt.Sprintf("line %d: %v", b.line, b.err) }

// read returns the next row; ok is false at the end.
func (p *Prompts) read() (row promptRow, ok bool, err error) {
	if p.lines != nil {
		for {
			line, ok, err := p.lines.next()
			if err != nil || !ok {
				return row, false, err
			}
			line = bytes.TrimRight(line, "\r")
			if p.kind == "txt" {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				return promptRow{text: string(line)}, true, nil
			}
			if row, err = parsePromptJSON(line); err == nil {
				err = row.check()
			}
			if err != nil {
				return row, false, &badRow{p.lines.line, err}
			}
			return row, true, nil
		}
	}
	rec, err := p.csv.Read()
	if errors.Is(err, io.EOF) {
		return row, false, nil
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return row, false, &badRow{pe.StartLine, pe.Err}
		}
		return row, false, fmt.Errorf("prompts %s: %w", p.path, err)
	}
	p.line, _ = p.csv.FieldPos(0)
	if row, err = p.csvRow(rec); err == nil {
		err = row.check()
	}
	if err != nil {
		return row, false, &badRow{p.line, err}
	}
	return row, true, nil
}

func (p *Prompts) csvRow(rec []string) (row promptRow, err error) {
	get := func(names []string) (string, bool) {
		if i := p.col(names); i >= 0 && i < len(rec) && rec[i] != "" {
			return rec[i], true
		}
		return "", false
	}
	row.text, _ = get(textColumns)
	row.system, _ = get(systemColumns)
	row.model, _ = get(modelColumns)
	if s, ok := get(messagesColumns); ok {
		if row.messages, err = checkMessages([]byte(s)); err != nil {
			return row, err
		}
	}
	if s, ok := get(outputColumns); ok {
		if row.output, err = count("output length", []byte(s)); err != nil {
			return row, err
		}
	}
	if s, ok := get(promptColumns); ok {
		if row.prompt, err = count("prompt length", []byte(s)); err != nil {
			return row, err
		}
	}
	return row, nil
}

// parsePromptJSON reads one JSONL line: an object, or a string.
func parsePromptJSON(line []byte) (row promptRow, err error) {
	if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '"' {
		err = json.Unmarshal(t, &row.text)
		return row, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return row, err
	}
	if obj == nil {
		return row, errors.New("want a JSON object or string")
	}
	str := func(names []string) (string, error) {
		for _, n := range names {
			if v, ok := obj[n]; ok && string(v) != "null" {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return "", fmt.Errorf("%s: want a string", n)
				}
				return s, nil
			}
		}
		return "", nil
	}
	num := func(names []string) (int, error) {
		for _, n := range names {
			if v, ok := obj[n]; ok && string(v) != "null" {
				return count(n, v)
			}
		}
		return 0, nil
	}
	if row.text, err = str(textColumns); err != nil {
		return row, err
	}
	if row.system, err = str(systemColumns); err != nil {
		return row, err
	}
	if row.model, err = str(modelColumns); err != nil {
		return row, err
	}
	if row.output, err = num(outputColumns); err != nil {
		return row, err
	}
	if row.prompt, err = num(promptColumns); err != nil {
		return row, err
	}
	for _, n := range messagesColumns {
		if v, ok := obj[n]; ok && string(v) != "null" {
			if row.messages, err = checkMessages(v); err != nil {
				return row, err
			}
			break
		}
	}
	return row, nil
}

// checkMessages requires a non-empty JSON array of objects each with a
// string role and a content (a string or an array of parts), and returns it
// compacted. As in OpenAI's chat API, only an assistant message that
// carries tool_calls (or the older function_call) may leave content out or
// null; every other role requires it.
func checkMessages(raw []byte) ([]byte, error) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil || len(msgs) == 0 {
		return nil, errors.New("messages: want a non-empty JSON array of {\"role\": …, \"content\": …} objects")
	}
	for i, m := range msgs {
		var role string
		if m == nil || json.Unmarshal(m["role"], &role) != nil || role == "" {
			return nil, fmt.Errorf("messages[%d]: want an object with a string role", i)
		}
		c := bytes.TrimSpace(m["content"])
		switch {
		case len(c) > 0 && (c[0] == '"' || c[0] == '['):
		case len(c) > 0 && !bytes.Equal(c, []byte("null")):
			return nil, fmt.Errorf("messages[%d]: content: want a string or an array of content parts", i)
		case role == "assistant" && (present(m["tool_calls"]) || present(m["function_call"])):
			// an assistant's tool call: content may be absent or null
		default:
			return nil, fmt.Errorf("messages[%d]: a %s message without content (only an assistant message with tool_calls may omit it)", i, role)
		}
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// present reports whether a JSON field is there and not null.
func present(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && !bytes.Equal(v, []byte("null"))
}

// check requires a prompt.
func (row *promptRow) check() error {
	if row.text == "" && row.messages == nil {
		return fmt.Errorf("no prompt: want one of %s, or messages", strings.Join(textColumns, ", "))
	}
	return nil
}

// request turns the row into request index i.
func (row *promptRow) request(i int) Request {
	req := Request{Index: i, Endpoint: openai.Chat, Stream: true, Model: row.model,
		PromptTokens: row.prompt, OutputTokens: row.output, Prompt: row.text, Messages: row.messages}
	if row.system == "" {
		return req
	}
	sys, _ := json.Marshal(map[string]string{"role": "system", "content": row.system})
	switch {
	case row.messages != nil:
		req.Messages = append(append(append([]byte("["), sys...), ','), row.messages[1:]...)
	default:
		user, _ := json.Marshal(map[string]string{"role": "user", "content": row.text})
		req.Messages = append(append(append(append([]byte("["), sys...), ','), user...), ']')
		// a completions endpoint sends the prompt: the system text leads
		req.Prompt = row.system + "\n\n" + row.text
	}
	return req
}

// Skipped counts malformed rows skipped.
func (p *Prompts) Skipped() int { return p.skips }

// Warnings returns none: a prompt file has no timing to get wrong.
func (p *Prompts) Warnings() []string { return nil }

// Close releases the file.
func (p *Prompts) Close() error {
	if p.lines != nil {
		return p.lines.Close()
	}
	return p.f.Close()
}
