package replaycli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// TestTimeScaleZeroIsRefused: every command that takes --time-scale
// refuses 0, from the command line or the environment, with a usage error
// that names the flag and says how to send as fast as possible (issue 16:
// 0 was taken for 1 and replayed at real time, silently), and refuses a
// negative scale as before. A positive one is accepted.
func TestTimeScaleZeroIsRefused(t *testing.T) {
	trace := tracestest.Write(t, "t.jsonl", `{"timestamp":0,"input_length":10,"output_length":1}`+"\n"+`{"timestamp":100,"input_length":10,"output_length":1}`+"\n")
	target := "http://127.0.0.1:1" // never reached: the flags are refused first
	commands := map[string][]string{
		"run":     {"run", "--target", target, "--workload", trace, "--quiet"},
		"sweep":   {"run", "--profile", "sweep", "--target", target, "--workload", trace, "--max-requests", "2", "--quiet"},
		"compare": {"compare", "--target", "a=" + target, "--target", "b=" + target, "--workload", trace, "--quiet"},
		"inspect": {"inspect", trace},
	}
	for name, args := range commands {
		for _, v := range []string{"0", "0.0", "-1", "NaN", "x"} {
			var out bytes.Buffer
			err := Run(context.Background(), append(append([]string(nil), args...), "--time-scale", v), &out, &out)
			if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "-time-scale") {
				t.Errorf("%s --time-scale %s: %v, want a usage error naming --time-scale", name, v, err)
				continue
			}
			if strings.HasPrefix(v, "0") && !strings.Contains(err.Error(), "--profile throughput") {
				t.Errorf("%s --time-scale %s: %v, want the way to send as fast as possible", name, v, err)
			}
		}
	}
	t.Setenv(cli.EnvName("time-scale"), "0")
	var out bytes.Buffer
	if err := Run(context.Background(), commands["inspect"], &out, &out); !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "REPRISE_TIME_SCALE") {
		t.Errorf("REPRISE_TIME_SCALE=0: %v, want a usage error naming it", err)
	}
	t.Setenv(cli.EnvName("time-scale"), "0.5")
	out.Reset()
	if err := Run(context.Background(), commands["inspect"], &out, &out); err != nil {
		t.Errorf("--time-scale 0.5: %v", err)
	}
	if got := inspecttest.Field(t, out.String(), "span"); got != "50ms" {
		t.Errorf("span %q at --time-scale 0.5, want 50ms (100 ms recorded)", got)
	}
}
