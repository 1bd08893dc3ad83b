package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Envoy Gateway's and Gateway API's kinds are validated against their CRDs'
// OpenAPI v3 schemas, copied verbatim into testdata/crds (see its README),
// as the kube-apiserver validates a custom resource: unknown fields, types,
// enums, patterns, bounds, required fields. Importing their Go types
// instead would pull github.com/envoyproxy/gateway's tree (controller-runtime,
// gateway-api, apiextensions-apiserver, about 40 modules) and move k8s.io/api
// to v0.36. CEL rules (x-kubernetes-validations) are not evaluated here.

// schema is a structural OpenAPI v3 schema as CRDs write it. It is decoded
// strictly: a keyword this validator does not know fails loudly rather than
// being ignored.
type schema struct {
	Type                 string             `json:"type"`
	Description          string             `json:"description"`
	Format               string             `json:"format"` // not checked (as the apiserver, except int32/int64 ranges)
	Default              json.RawMessage    `json:"default"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *schemaOrBool      `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Required             []string           `json:"required"`
	Enum                 []json.RawMessage  `json:"enum"`
	Pattern              string             `json:"pattern"`
	MinLength            *int               `json:"minLength"`
	MaxLength            *int               `json:"maxLength"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	ExclusiveMinimum     bool               `json:"exclusiveMinimum"`
	ExclusiveMaximum     bool               `json:"exclusiveMaximum"`
	MinItems             *int               `json:"minItems"`
	MaxItems             *int               `json:"maxItems"`
	MinProperties        *int               `json:"minProperties"`
	MaxProperties        *int               `json:"maxProperties"`
	AllOf                []*schema          `json:"allOf"`
	AnyOf                []*schema          `json:"anyOf"`
	OneOf                []*schema          `json:"oneOf"`
	Not                  *schema            `json:"not"`
	Nullable             bool               `json:"nullable"`

	PreserveUnknownFields bool              `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString           bool              `json:"x-kubernetes-int-or-string"`
	EmbeddedResource      bool              `json:"x-kubernetes-embedded-resource"`
	ListType              string            `json:"x-kubernetes-list-type"`
	ListMapKeys           []string          `json:"x-kubernetes-list-map-keys"`
	MapType               string            `json:"x-kubernetes-map-type"`
	Validations           []json.RawMessage `json:"x-kubernetes-validations"` // CEL: not evaluated
}

type schemaOrBool struct {
	allowed bool
	schema  *schema
}

func (s *schemaOrBool) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &s.allowed); err == nil {
		return nil
	}
	s.allowed = true
	s.schema = new(schema)
	return strictJSON(b, s.schema)
}

// crd is the part of a CustomResourceDefinition the validator reads.
type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// crdSchemas loads testdata/crds once: "group/version Kind" → spec schema.
var crdSchemas = sync.OnceValues(func() (map[string]*schema, error) {
	files, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in testdata/crds: %v", err)
	}
	out := map[string]*schema{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		var c crd
		if err := json.Unmarshal(j, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range c.Spec.Versions {
			root := new(schema)
			if err := strictJSON(v.Schema.OpenAPIV3Schema, root); err != nil {
				return nil, fmt.Errorf("%s: version %s: schema: %w", f, v.Name, err)
			}
			spec := root.Properties["spec"]
			if spec == nil {
				return nil, fmt.Errorf("%s: version %s: no spec schema", f, v.Name)
			}
			out[c.Spec.Group+"/"+v.Name+" "+c.Spec.Names.Kind] = spec
		}
	}
	return out, nil
})

// crdSchema decodes a custom resource whose Go type is not imported: the
// envelope strictly, the spec against its CRD's schema, then into T (the
// fields the policy checks read).
func crdSchema[T any](o *object) error {
	raw, err := decodeEnvelope(o)
	if err != nil {
		return err
	}
	schemas, err := crdSchemas()
	if err != nil {
		return err
	}
	s := schemas[o.kind]
	if s == nil {
		return fmt.Errorf("no CRD for %s in deploy/testdata/crds", o.kind)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var spec any
	if err := dec.Decode(&spec); err != nil {
		return err
	}
	if errs := s.validate("spec", spec, true); len(errs) > 0 {
		return errors.Join(errs...)
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return err
	}
	// Fields the CRD leaves open (x-kubernetes-preserve-unknown-fields)
	// and its controller decodes into a known type are decoded here.
	if s, ok := any(v).(interface{ strictOpen() error }); ok {
		if err := s.strictOpen(); err != nil {
			return err
		}
	}
	o.value = v
	return nil
}

// validate checks v against s. strict: a field not in properties is an
// error; false inside allOf/anyOf/oneOf/not, whose branches constrain
// values and do not list every field (structural schemas).
func (s *schema) validate(at string, v any, strict bool) []error {
	if v == nil {
		if s.Nullable {
			return nil
		}
		return []error{fmt.Errorf("%s: null", at)}
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{at}, args...)...))
	}
	if s.IntOrString {
		if _, ok := v.(string); !ok && !isInteger(v) {
			fail("want an integer or a string, got %s", describe(v))
		}
	} else if s.Type != "" && !hasType(v, s.Type) {
		fail("want %s, got %s", s.Type, describe(v))
		return errs
	}
	if len(s.Enum) > 0 && !inEnum(v, s.Enum) {
		fail("%s not one of %s", describe(v), enumList(s.Enum))
	}
	switch x := v.(type) {
	case string:
		n := utf8.RuneCountInString(x)
		if s.MinLength != nil && n < *s.MinLength {
			fail("shorter than %d", *s.MinLength)
		}
		if s.MaxLength != nil && n > *s.MaxLength {
			fail("longer than %d", *s.MaxLength)
		}
		if s.Pattern != "" {
			re, err := compilePattern(s.Pattern)
			if err != nil {
				fail("pattern %q: %v", s.Pattern, err)
			} else if !re.MatchString(x) {
				fail("%q does not match %q", x, s.Pattern)
			}
		}
	case json.Number:
		f, _ := x.Float64()
		if s.Minimum != nil && (f < *s.Minimum || s.ExclusiveMinimum && f == *s.Minimum) {
			fail("%s below the minimum %v", x, *s.Minimum)
		}
		if s.Maximum != nil && (f > *s.Maximum || s.ExclusiveMaximum && f == *s.Maximum) {
			fail("%s above the maximum %v", x, *s.Maximum)
		}
	case []any:
		if s.MinItems != nil && len(x) < *s.MinItems {
			fail("fewer than %d items", *s.MinItems)
		}
		if s.MaxItems != nil && len(x) > *s.MaxItems {
			fail("more than %d items", *s.MaxItems)
		}
		if s.Items != nil {
			for i, e := range x {
				errs = append(errs, s.Items.validate(fmt.Sprintf("%s[%d]", at, i), e, strict)...)
			}
		}
	case map[string]any:
		if s.MinProperties != nil && len(x) < *s.MinProperties {
			fail("fewer than %d fields", *s.MinProperties)
		}
		if s.MaxProperties != nil && len(x) > *s.MaxProperties {
			fail("more than %d fields", *s.MaxProperties)
		}
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				fail("missing required field %q", r)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			switch p, ap := s.Properties[k], s.AdditionalProperties; {
			case p != nil:
				errs = append(errs, p.validate(at+"."+k, x[k], strict)...)
			case ap != nil && ap.schema != nil:
				errs = append(errs, ap.schema.validate(at+"."+k, x[k], strict)...)
			case ap != nil && ap.allowed, s.PreserveUnknownFields, !strict:
			default:
				fail("unknown field %q", k)
			}
		}
	}
	for _, b := range s.AllOf {
		errs = append(errs, b.validate(at, v, false)...)
	}
	if len(s.AnyOf) > 0 && countValid(s.AnyOf, at, v) == 0 {
		fail("matches none of anyOf")
	}
	if len(s.OneOf) > 0 && countValid(s.OneOf, at, v) != 1 {
		fail("does not match exactly one of oneOf")
	}
	if s.Not != nil && len(s.Not.validate(at, v, false)) == 0 {
		fail("matches a schema under not")
	}
	return errs
}

func countValid(branches []*schema, at string, v any) int {
	n := 0
	for _, b := range branches {
		if len(b.validate(at, v, false)) == 0 {
			n++
		}
	}
	return n
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		return isInteger(v)
	}
	return false
}

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := n.Float64()
	return err == nil && f == math.Trunc(f) && !strings.ContainsAny(n.String(), ".eE")
}

func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}

func inEnum(v any, enum []json.RawMessage) bool {
	got, err := json.Marshal(v)
	if err != nil {
		return false
	}
	for _, e := range enum {
		if bytes.Equal(bytes.TrimSpace(e), got) {
			return true
		}
	}
	return false
}

func enumList(enum []json.RawMessage) string {
	s := make([]string, len(enum))
	for i, e := range enum {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}

var patterns sync.Map // string → *regexp.Regexp or error

// compilePattern compiles an OpenAPI (ECMA-262) pattern with Go's RE2 syntax,
// which covers the patterns these CRDs put on the fields used here; one it
// cannot compile is an error, never a silent pass.
func compilePattern(p string) (*regexp.Regexp, error) {
	if v, ok := patterns.Load(p); ok {
		if re, ok := v.(*regexp.Regexp); ok {
			return re, nil
		}
		return nil, v.(error)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		patterns.Store(p, err)
		return nil, err
	}
	patterns.Store(p, re)
	return re, nil
}

// TestCRDsVerbatim holds the CRD copies to the digests their README
// records with their source: a schema edited by hand would validate
// manifests against something no cluster runs.
func TestCRDsVerbatim(t *testing.T) {
	readme, err := os.ReadFile("testdata/crds/README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		row := fmt.Sprintf("| `%s` |", filepath.Base(f))
		sum := fmt.Sprintf("`%x`", sha256.Sum256(b))
		if !slices.ContainsFunc(strings.Split(string(readme), "\n"), func(l string) bool {
			return strings.HasPrefix(l, row) && strings.HasSuffix(strings.TrimSpace(l), sum+" |")
		}) {
			t.Errorf("%s: sha256 %s is not the one testdata/crds/README.md records for it", f, sum)
		}
	}
}

// TestSchemaValidate covers the keywords the planted typos do not reach.
func TestSchemaValidate(t *testing.T) {
	const s = `{"type": "object", "required": ["name"], "properties": {
		"name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
		"port": {"type": "integer", "minimum": 1, "maximum": 65535},
		"size": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
		"labels": {"type": "object", "additionalProperties": {"type": "string"}},
		"free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
		"list": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
		"mode": {"type": "string", "enum": ["A", "B"]},
		"opt": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
			"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}}`
	root := new(schema)
	if err := strictJSON([]byte(s), root); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ doc, want string }{
		{`{"name": "ab", "port": 80, "size": "1Gi", "labels": {"x": "y"}, "free": {"any": [1]}, "list": ["a"], "mode": "A", "opt": {"a": "1"}}`, ""},
		{`{"name": "ab", "size": 3}`, ""},
		{`{"port": 80}`, `missing required field "name"`},
		{`{"name": ""}`, "shorter than 1"},
		{`{"name": "abcdef"}`, "longer than 5"},
		{`{"name": "AB"}`, "does not match"},
		{`{"name": "ab", "port": 0}`, "below the minimum"},
		{`{"name": "ab", "port": 1.5}`, "want integer"},
		{`{"name": "ab", "size": true}`, "integer or a string"},
		{`{"name": "ab", "labels": {"x": 1}}`, "spec.labels.x: want string"},
		{`{"name": "ab", "list": ["a", "b"]}`, "more than 1 items"},
		{`{"name": "ab", "mode": "C"}`, "not one of"},
		{`{"name": "ab", "opt": {"a": "1", "b": "2"}}`, "exactly one of oneOf"},
		{`{"name": "ab", "nmae": "x"}`, `unknown field "nmae"`},
	} {
		v, err := jsonTree([]byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		err = errors.Join(root.validate("spec", v, true)...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.doc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error saying %q", c.doc, err, c.want)
		}
	}
}
