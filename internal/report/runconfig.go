package report

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// RunConfig is the settings that produced a benchmark, as benchmarks.json's
// "config" object. Readers (the GuideLLM export, compare, the report) read
// its fields; nothing asserts on untyped values. It is written with its
// keys sorted, as when this object was a map (encoding/json sorts map
// keys): files written before it was typed and after are the same bytes. Zero values are left out, except where zero is
// a setting (a pointer then says whether it was written).
type RunConfig struct {
	BacklogAtStart   *float64 `json:"backlog_at_start,omitempty"`   // the server's requests running + waiting when the benchmark started (from its metrics)
	Burstiness       float64  `json:"burstiness,omitempty"`         // gamma: shape of the gaps
	CancelledByDrain *int     `json:"cancelled_by_drain,omitempty"` // in-flight requests the drain cancelled
	CaptureSource    string   `json:"capture_source,omitempty"`     // production as captured: the front end that captured it (the manifest's source)
	ClockOffsetS     *float64 `json:"clock_offset_s,omitempty"`     // a shard's clock against the target's Date header, local − target (seconds)
	Capture          string   `json:"capture,omitempty"`            // production as captured: the capture's path
	Concurrency      int      `json:"concurrency,omitempty"`        // concurrent: closed-loop streams
	Cooldown         string   `json:"cooldown,omitempty"`           // requests at the end left out of the metrics
	DrainS           *float64 `json:"drain_s,omitempty"`            // how long in-flight requests could finish after scheduling stopped
	ErrorWindow      int      `json:"error_window,omitempty"`       // finished requests max_error_rate looks at
	// GraphUnresolvedAfter counts conversation-graph edges whose earlier
	// node was not replayed (filtered out, or listed after the call): those calls did
	// not wait for it.
	GraphUnresolvedAfter int      `json:"graph_unresolved_after,omitempty"`
	HTTP2                bool     `json:"http2,omitempty"`
	IgnoreEOS            *bool    `json:"ignore_eos,omitempty"`        // false: --ignore-eos off (absent: sent)
	InFlightAtStop       *int     `json:"in_flight_at_stop,omitempty"` // requests in flight when scheduling stopped
	MaxConcurrency       *int     `json:"max_concurrency,omitempty"`   // cap on requests in flight
	MaxErrorRate         float64  `json:"max_error_rate,omitempty"`
	MaxErrors            int      `json:"max_errors,omitempty"`
	MaxRequests          int      `json:"max_requests,omitempty"`
	MaxSeconds           float64  `json:"max_seconds,omitempty"`
	MergedShards         int      `json:"merged_shards,omitempty"`         // a benchmark merged from this many shards (replay merge)
	Model                string   `json:"model,omitempty"`                 // the model sent, overriding the workload's
	NetworkConnectMs     *float64 `json:"network_connect_ms,omitempty"`    // the replayer's time to connect to the target, measured before the benchmark
	NetworkFirstByteMs   *float64 `json:"network_first_byte_ms,omitempty"` // and to the first byte of GET /v1/models on a fresh connection (connect included)
	Plan                 string   `json:"plan,omitempty"`                  // a split run's plan fingerprint: every shard's is the same
	Profile              string   `json:"profile,omitempty"`
	PromptNamespace      string   `json:"prompt_namespace,omitempty"` // the prompts' content namespace ("": the seed's own)
	Rate                 float64  `json:"rate,omitempty"`             // req/s of constant, poisson and gamma
	Seed                 *int64   `json:"seed,omitempty"`
	SettledS             *float64 `json:"settled_s,omitempty"`             // time waited for an idle target before the benchmark (after one that gave up on requests)
	Shard                string   `json:"shard,omitempty"`                 // i/N: this benchmark is shard i of a run split N ways
	SkippedInvalid       int      `json:"skipped_invalid_lines,omitempty"` // workload lines skipped (--skip-invalid)
	SpinS                float64  `json:"spin_s,omitempty"`
	StartAt              string   `json:"start_at,omitempty"` // RFC 3339 instant the benchmark waited for
	StopReason           string   `json:"stop_reason,omitempty"`
	StoppedAtS           *float64 `json:"stopped_at_s,omitempty"` // when scheduling stopped, from the run origin
	Target               string   `json:"target,omitempty"`
	TimeScale            float64  `json:"time_scale,omitempty"`            // trace: factor on the recorded offsets
	Warmup               string   `json:"warmup,omitempty"`                // requests at the start left out of the metrics
	WorkloadError        string   `json:"workload_error,omitempty"`        // the read error that stopped the workload early
	WorkloadPrefixShare  *float64 `json:"workload_prefix_share,omitempty"` // the prompt-token share a prefix cache would hit from the workload's own prefix structure (single-turn workloads)
	// Transforms are the workload transforms in use (nil: none).
	Transforms *TransformsConfig `json:"workload_transforms,omitempty"`
	// Other keeps, verbatim, keys this build does not know: a file written
	// by a newer Reprise keeps them when read and written again.
	Other map[string]json.RawMessage `json:"-"`
}

// TransformsConfig is a benchmark's workload transforms (docs/workloads.md),
// fields in JSON name order as RunConfig's.
type TransformsConfig struct {
	ClampWaitS      float64                    `json:"clamp_wait_s,omitempty"`
	FilterModel     []string                   `json:"filter_model,omitempty"`
	FilterPath      []string                   `json:"filter_path,omitempty"`
	FilterStatus    []string                   `json:"filter_status,omitempty"`
	Loop            int                        `json:"loop,omitempty"`
	MaxOutputTokens int                        `json:"max_output_tokens,omitempty"`
	MaxPromptTokens int                        `json:"max_prompt_tokens,omitempty"`
	ModelMap        map[string]string          `json:"model_map,omitempty"`
	PackIdleS       float64                    `json:"pack_idle_s,omitempty"`
	Sample          float64                    `json:"sample,omitempty"`
	Shard           string                     `json:"shard,omitempty"` // i/N
	TraceRate       float64                    `json:"trace_rate,omitempty"`
	WindowEndS      float64                    `json:"window_end_s,omitempty"`
	WindowStartS    float64                    `json:"window_start_s,omitempty"`
	Other           map[string]json.RawMessage `json:"-"`
}

// Ptr returns a pointer to v, for RunConfig's settings where zero is a value.
func Ptr[T any](v T) *T { return &v }

// IsZero reports whether c holds no setting (benchmarks.json then has no
// "config").
func (c RunConfig) IsZero() bool { return reflect.ValueOf(c).IsZero() }

type runConfigFields RunConfig // without the methods, for encoding/json
type transformsFields TransformsConfig

func (c RunConfig) MarshalJSON() ([]byte, error) {
	return marshalWithOther(runConfigFields(c), c.Other)
}

func (c *RunConfig) UnmarshalJSON(b []byte) error {
	var f runConfigFields
	other, err := unmarshalWithOther(b, &f)
	if err != nil {
		return err
	}
	*c = RunConfig(f)
	c.Other = other
	return nil
}

func (t TransformsConfig) MarshalJSON() ([]byte, error) {
	return marshalWithOther(transformsFields(t), t.Other)
}

func (t *TransformsConfig) UnmarshalJSON(b []byte) error {
	var f transformsFields
	other, err := unmarshalWithOther(b, &f)
	if err != nil {
		return err
	}
	*t = TransformsConfig(f)
	t.Other = other
	return nil
}

// marshalWithOther encodes v's fields and the unknown keys kept in other
// as one object with sorted keys, as the map it once was (the struct's
// field order does not matter).
func marshalWithOther(v any, other map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, raw := range other {
		if _, known := m[k]; !known {
			m[k] = raw
		}
	}
	return json.Marshal(m) // map keys sorted
}

// unmarshalWithOther decodes b into the struct v points to and returns the
// keys no field of it names.
func unmarshalWithOther(b []byte, v any) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	known := jsonNames(reflect.TypeOf(v).Elem())
	var other map[string]json.RawMessage
	for k, raw := range all {
		if !known[k] {
			if other == nil {
				other = map[string]json.RawMessage{}
			}
			other[k] = raw
		}
	}
	return other, nil
}

var jsonNamesCache sync.Map // reflect.Type → map[string]bool

// jsonNames are the JSON keys of a struct type's fields.
func jsonNames(t reflect.Type) map[string]bool {
	if m, ok := jsonNamesCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	jsonNamesCache.Store(t, m)
	return m
}

// entries are the config's keys and values as benchmarks.json holds them,
// sorted by key, for the report's settings table: what a reader of the
// file sees, whether the config was just built or read back.
func (c *RunConfig) entries() []kv {
	if c.IsZero() {
		return nil
	}
	return jsonEntries(c)
}

// Entries are the transforms' keys and values as benchmarks.json holds
// them, sorted by key (none for nil), for a page that lists them.
func (t *TransformsConfig) Entries() []KV {
	if t == nil || t.IsZero() {
		return nil
	}
	return jsonEntries(t)
}

// KV is one setting as a page shows it.
type KV = kv

// jsonEntries are the top-level keys of v's JSON object, sorted, with
// their values as the report shows them (configValue).
func jsonEntries(v any) []kv {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		var val any
		_ = json.Unmarshal(m[k], &val)
		out = append(out, kv{k, configValue(val)})
	}
	return out
}

// IsZero reports whether no transform is in use.
func (t TransformsConfig) IsZero() bool { return reflect.ValueOf(t).IsZero() }
