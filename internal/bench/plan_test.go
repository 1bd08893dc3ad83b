package bench

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// Profile trace is refused only for a workload without arrival times
// (synthetic:, prompt files); a timed trace, another profile, or a
// workload that does not open (its own error comes later) pass.
func TestUntimedTraceOnlyForUntimedWorkloads(t *testing.T) {
	txt := tracestest.Write(t, "prompts.txt", "hello\nworld\n")
	trace := tracestest.Write(t, "trace.jsonl", `{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}`+"\n")
	const synthetic = "synthetic:prompt_tokens=10,output_tokens=5,samples=20"
	for _, spec := range []string{synthetic, txt, "prompts:" + txt} {
		var fe *FieldError
		if err := untimedTrace(engine.ProfileTrace, spec); !errors.As(err, &fe) || fe.Field != "Profile" || !strings.Contains(err.Error(), spec) {
			t.Errorf("trace with %s: %v, want an error on Profile naming the workload", spec, err)
		}
	}
	for _, tt := range []struct{ profile, spec string }{
		{engine.ProfileTrace, trace},                           // timed
		{engine.ProfileTrace, "mooncake:" + trace},             // timed, prefixed
		{engine.ProfilePoisson, synthetic},                     // a rate profile
		{engine.ProfileConcurrent, txt},                        // a closed loop
		{engine.ProfileTrace, filepath.Join(t.TempDir(), "x")}, // does not open: its own error comes later
	} {
		if err := untimedTrace(tt.profile, tt.spec); err != nil {
			t.Errorf("%s with %s: %v", tt.profile, tt.spec, err)
		}
	}
}
