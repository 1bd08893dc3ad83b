package workload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OpenOptions configures how a workload is read.
type OpenOptions struct {
	// SkipInvalid skips malformed lines (counted by Skipped) instead of
	// stopping at the first with an error naming file and line.
	SkipInvalid bool
}

// Open returns the source a workload spec names:
//
//	DIR or FILE.jsonl.zst    a Reprise capture (directory with manifest.json, or one segment)
//	mooncake:PATH            Mooncake JSONL (timestamp ms, input_length, output_length, hash_ids)
//	azure:PATH               Azure LLM inference trace CSV (2023 and 2024 layouts)
//	synthetic:k=v,...        synthetic lengths (prompt_tokens, output_tokens, ..._stdev/_min/_max, samples, seed)
//	PATH.jsonl               detected as Mooncake when its first line has input_length
func Open(spec string, opts OpenOptions) (Source, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if ok && !strings.ContainsAny(kind, `/\.`) {
		switch kind {
		case "mooncake":
			return OpenMooncake(arg, opts)
		case "azure":
			return OpenAzure(arg, opts)
		case "synthetic":
			return ParseSynthetic(arg)
		case "capture":
			return OpenCapture(arg)
		default:
			return nil, fmt.Errorf("workload %q: unknown kind %q (want a capture path, mooncake:, azure:, synthetic: or capture:)", spec, kind)
		}
	}
	st, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", spec, err)
	}
	if st.IsDir() || strings.HasSuffix(spec, ".jsonl.zst") {
		if st.IsDir() {
			if _, err := os.Stat(filepath.Join(spec, "manifest.json")); err != nil {
				return nil, fmt.Errorf("workload %s: a directory that is not a capture (no manifest.json)", spec)
			}
		}
		return OpenCapture(spec)
	}
	if strings.HasSuffix(spec, ".jsonl") && firstLineHas(spec, `"input_length"`) {
		return OpenMooncake(spec, opts)
	}
	return nil, fmt.Errorf("workload %s: cannot tell its format; prefix it with mooncake:, azure: or synthetic:", spec)
}

func firstLineHas(path, needle string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadBytes('\n')
	return bytes.Contains(line, []byte(needle))
}
