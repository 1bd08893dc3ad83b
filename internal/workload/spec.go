package workload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// OpenOptions configures how a workload is read.
type OpenOptions struct {
	// SkipInvalid skips malformed lines (counted by Skipped) instead of
	// stopping at the first with an error naming file and line.
	SkipInvalid bool
	// Endpoint, when set (openai.Chat or openai.Completions), replaces
	// every request's endpoint.
	Endpoint openai.Endpoint
	// Stream, when set, replaces every request's stream flag.
	Stream *bool
	// Warn, when set, is called with each warning as soon as the reader
	// has it (a likely unit mistake is reported before a long replay, not
	// after it); Warnings() still returns them all at the end.
	Warn func(msg string)
}

// Open returns the source a workload spec names:
//
//	DIR or FILE.jsonl.zst    a Reprise capture (directory with manifest.json, DIR/manifest.json, or one segment)
//	capture:PATH             the same, explicitly
//	mooncake:PATH            Mooncake JSONL (timestamp ms, input_length, output_length, hash_ids), AIPerf's variant too
//	azure:PATH               Azure LLM inference trace CSV (2023 and 2024 layouts)
//	burstgpt:PATH            BurstGPT CSV (Timestamp s, Request tokens, Response tokens, ...)
//	synthetic:k=v,...        synthetic lengths in GuideLLM's vocabulary (see ParseSynthetic), or synthetic:{JSON}
//	prompts:PATH             prompts sent verbatim: .jsonl, .csv or .txt (see Prompts)
//	otel:PATH                OpenTelemetry GenAI spans: span-per-line or session-per-line JSONL, or OTLP JSON (see OTel)
//	weka:PATH                WEKA agentic traces: one conversation a line, sub-agent groups included (see WEKA)
//	PATH.jsonl, PATH.json    OTel when the first line is an OTLP export (resourceSpans), has gen_ai. attributes or a spans list; WEKA when it has a requests list
//	PATH.jsonl               Mooncake when its first line has input_length, hash_ids or session_id (AIPerf)
//	PATH.csv                 Azure, BurstGPT or prompts, told apart by the header (a prompt or messages column: prompts)
//	PATH.jsonl, PATH.txt     prompts when the first line has "prompt" or "messages" and no "timestamp", or is a string; any .txt
//
// The returned source also implements io.Closer when it holds files, and
// Warnings() []string and Skipped() int where they apply.
func Open(spec string, opts OpenOptions) (Source, error) {
	src, err := open(spec, opts)
	if err != nil {
		return nil, err
	}
	if opts.Endpoint == "" && opts.Stream == nil {
		return src, nil
	}
	if opts.Endpoint != "" && opts.Endpoint != openai.Chat && opts.Endpoint != openai.Completions {
		closeSource(src)
		return nil, fmt.Errorf("workload %s: endpoint %q: want %s or %s", spec, opts.Endpoint, openai.Chat, openai.Completions)
	}
	return Map(src, func(r *Request) {
		if opts.Endpoint != "" {
			r.Endpoint = opts.Endpoint
		}
		if opts.Stream != nil {
			r.Stream = *opts.Stream
		}
	}), nil
}

// CapturePath reports whether spec names a Reprise capture — "capture:PATH",
// a directory holding manifest.json (or run subdirectories that do), a
// capture's manifest.json (that directory's own capture), or a segment
// (.jsonl.zst, or a seg-NNNNNN.jsonl plain one) — and its path.
// Open and the replay CLI (which adds production's recorded timings as a
// baseline for captures) decide the same way through it.
func CapturePath(spec string) (string, bool) {
	if p, ok := strings.CutPrefix(spec, "capture:"); ok {
		return p, true
	}
	if strings.HasSuffix(spec, ".jsonl.zst") || capture.IsSegmentName(spec) {
		return spec, true
	}
	if filepath.Base(spec) == capture.ManifestName && capture.HoldsCapture(filepath.Dir(spec)) {
		return spec, true // DIR/manifest.json: DIR's own capture, not its run subdirectories
	}
	if capture.HoldsCapture(spec) { // manifest.json, or run-* subdirectories of restarts
		return spec, true
	}
	return "", false
}

func open(spec string, opts OpenOptions) (Source, error) {
	if path, ok := CapturePath(spec); ok {
		return OpenCapture(path, opts)
	}
	kind, arg, ok := strings.Cut(spec, ":")
	if ok && !strings.ContainsAny(kind, `/\.`) && len(kind) > 1 { // not C:\ on Windows
		switch kind {
		case "mooncake":
			return OpenMooncake(arg, opts)
		case "azure":
			return OpenAzure(arg, opts)
		case "burstgpt":
			return OpenBurstGPT(arg, opts)
		case "synthetic":
			return ParseSynthetic(arg)
		case "prompts":
			return OpenPrompts(arg, opts)
		case "otel":
			return OpenOTel(arg, opts)
		case "weka":
			return OpenWEKA(arg, opts)
		default:
			return nil, fmt.Errorf("workload %q: unknown kind %q (want a capture path, capture:, mooncake:, azure:, burstgpt:, synthetic:, prompts:, otel: or weka:)", spec, kind)
		}
	}
	st, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", spec, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("workload %s: a directory that is not a capture (no manifest.json)", spec)
	}
	if isEmpty(spec, st.Size()) {
		// Said as it is: "cannot tell its format" sent users looking for
		// a format problem in a file that holds nothing (issue 16).
		return nil, fmt.Errorf("workload %s is empty", spec)
	}
	first := firstLine(spec)
	cols := csvHeader(first)
	jsonFile := strings.HasSuffix(spec, ".jsonl") || strings.HasSuffix(spec, ".json")
	switch {
	// Before Mooncake: a WEKA conversation's requests hold hash_ids too.
	case jsonFile && (bytes.Contains(first, []byte(`"resourceSpans"`)) || bytes.Contains(first, []byte(`"gen_ai.`)) ||
		bytes.Contains(first, []byte(`"spans":[`)) || bytes.Contains(first, []byte(`"spans": [`))):
		return OpenOTel(spec, opts)
	case jsonFile && (bytes.Contains(first, []byte(`"requests":[`)) || bytes.Contains(first, []byte(`"requests": [`))):
		return OpenWEKA(spec, opts)
	case strings.HasSuffix(spec, ".jsonl") && (bytes.Contains(first, []byte(`"input_length"`)) || bytes.Contains(first, []byte(`"hash_ids"`)) ||
		bytes.Contains(first, []byte(`"session_id"`))):
		return OpenMooncake(spec, opts)
	case strings.HasSuffix(spec, ".csv") && cols[normName("ContextTokens")]:
		return OpenAzure(spec, opts)
	case strings.HasSuffix(spec, ".csv") && cols[normName("Request tokens")]:
		return OpenBurstGPT(spec, opts)
	case strings.HasSuffix(spec, ".csv") && hasAny(cols, textColumns, messagesColumns):
		return OpenPrompts(spec, opts)
	case strings.HasSuffix(spec, ".jsonl") && !bytes.Contains(first, []byte(`"timestamp"`)) &&
		(bytes.Contains(first, []byte(`"prompt"`)) || bytes.Contains(first, []byte(`"messages"`)) || bytes.HasPrefix(bytes.TrimSpace(first), []byte(`"`))),
		strings.HasSuffix(spec, ".txt"):
		return OpenPrompts(spec, opts)
	}
	return nil, fmt.Errorf("workload %s: cannot tell its format (want a capture directory with manifest.json, a capture segment .jsonl.zst, "+
		"a Mooncake .jsonl whose first line has input_length, an OTel or WEKA .jsonl, an Azure or BurstGPT .csv, a .csv or .jsonl of prompts, a .txt, or a prefixed spec: capture:, mooncake:, azure:, burstgpt:, synthetic:, prompts:, otel:, weka:)", spec)
}

// csvHeader returns the folded column names (normName) of a CSV header
// line, as the CSV readers match them.
func csvHeader(line []byte) map[string]bool {
	line = bytes.TrimPrefix(bytes.TrimRight(line, "\r"), []byte("\ufeff"))
	cols := map[string]bool{}
	for _, name := range strings.Split(string(line), ",") {
		cols[normName(name)] = true
	}
	return cols
}

// hasAny reports whether cols holds one of the names of any list.
func hasAny(cols map[string]bool, lists ...[]string) bool {
	for _, l := range lists {
		for _, n := range l {
			if cols[normName(n)] {
				return true
			}
		}
	}
	return false
}

// isEmpty reports whether the file at path, of size bytes, holds nothing
// but white space. Only small files are read to tell.
func isEmpty(path string, size int64) bool {
	if size == 0 {
		return true
	}
	if size > 64<<10 {
		return false
	}
	b, err := os.ReadFile(path)
	return err == nil && len(bytes.TrimSpace(b)) == 0
}

// firstLine returns up to 64 KiB of the file's first line that is not
// blank: leading blank lines (which the readers skip too) do not hide the
// format.
func firstLine(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, more, err := r.ReadLine()
		if err != nil || len(bytes.TrimSpace(line)) > 0 {
			return line
		}
		for more && err == nil { // a long run of spaces: the rest of its line
			_, more, err = r.ReadLine()
		}
	}
}
