package report

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// Files written by the builds before the config was typed (a captured
// baseline with a trace replay; a poisson run with a warmup, a model map
// and per-request records) read into the typed fields, and write back
// with the same config objects.
func TestReadsVersion1Files(t *testing.T) {
	for _, c := range []struct {
		file  string
		check func(t *testing.T, f *File)
	}{
		{"testdata/v1-captured.json", func(t *testing.T, f *File) {
			if got := f.Benchmarks[0].Config.Capture; got != "demo-out/capture" {
				t.Errorf("captured config capture = %q", got)
			}
			c := f.Benchmarks[1].Config
			if c.Profile != "trace" || c.TimeScale != 1 || c.Seed == nil || *c.Seed != 42 || c.StopReason != "workload_end" ||
				c.CancelledByDrain == nil || *c.CancelledByDrain != 0 || c.MaxConcurrency == nil || *c.MaxConcurrency != 1024 {
				t.Errorf("trace config read as %+v", c)
			}
		}},
		{"testdata/v1-poisson.json", func(t *testing.T, f *File) {
			c := f.Benchmarks[0].Config
			if c.Profile != "poisson" || c.Rate != 20 || c.MaxRequests != 30 || c.Warmup != "2" ||
				c.Transforms == nil || c.Transforms.ModelMap["*"] != "sim" || c.InFlightAtStop == nil {
				t.Errorf("poisson config read as %+v (transforms %+v)", c, c.Transforms)
			}
			if len(f.Benchmarks[0].Requests) != 30 {
				t.Errorf("%d request records, want 30", len(f.Benchmarks[0].Requests))
			}
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ReadJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, f)
			var buf bytes.Buffer
			if err := WriteJSON(&buf, f); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(configs(t, raw), configs(t, buf.Bytes())) {
				t.Errorf("configs changed in a read and write:\n%v\n%v", configs(t, raw), configs(t, buf.Bytes()))
			}
		})
	}
}

// A key this build does not know (a newer writer's) is kept verbatim.
func TestRunConfigKeepsUnknownKeys(t *testing.T) {
	in := `{"profile":"constant","rate":2,"zz_future":{"a":[1,2]},"workload_transforms":{"loop":2,"zz_new":true}}`
	var c RunConfig
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.Rate != 2 || c.Transforms == nil || c.Transforms.Loop != 2 {
		t.Fatalf("read %+v", c)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal([]byte(in), &a)
	_ = json.Unmarshal(out, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("wrote %s, read %s", out, in)
	}
}

// configs are the "config" objects of a benchmarks.json, decoded untyped.
func configs(t *testing.T, raw []byte) []any {
	t.Helper()
	var f struct {
		Benchmarks []struct {
			Config any `json:"config"`
		} `json:"benchmarks"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, b := range f.Benchmarks {
		out = append(out, b.Config)
	}
	return out
}
