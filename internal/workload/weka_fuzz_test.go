package workload

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzWEKA reads arbitrary files as WEKA traces, seeded with the test
// files whole and line by line: no panic, errors name file and line,
// --skip-invalid never fails, and requests keep the readers' promises
// (see checkSource).
func FuzzWEKA(f *testing.F) {
	addLines(f, true, filepath.Join("testdata", "weka", "agentic.jsonl"))
	single, err := os.ReadFile(filepath.Join("testdata", "weka", "single.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(single)
	f.Add([]byte(`[{"id":"a","requests":[{"t":0,"in":64,"out":1,"hash_ids":[1]}]},{"id":"b","requests":[]}]`))
	f.Add([]byte(`{"id":"x","hash_id_scope":"local","block_size":2,"requests":[{"t":1e9,"in":3,"out":0,"hash_ids":[2147483647,0]},{"type":"subagent","t":-5,"requests":[{"t":"x"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkSource(t, func(skip bool) (Source, error) { return OpenWEKA(p, OpenOptions{SkipInvalid: skip}) })
	})
}
