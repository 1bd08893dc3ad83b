package deploy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"google.golang.org/protobuf/proto"
)

// The capture policy of every manifest (issue 11): capture fails open,
// Envoy sends the collector only allowlisted headers, and no manifest
// carries a secret.

// forwardedHeaders are the only headers an ext_proc filter may send the
// collector (DESIGN.md "Credentials"): what a record needs, never
// Authorization, API keys or cookies. content-encoding is the collector's
// too (filters/extproc reads it on both sides): without it a gzip body
// would be parsed as if it were plain. A --session-header the collector
// is started with must be added here and to the manifests.
var forwardedHeaders = []string{
	":path", ":method", ":status", "content-type", "content-encoding", "x-request-id", "x-gateway-destination-endpoint",
}

// envoyExtensionPolicySpec is what the policy reads of an Envoy Gateway
// EnvoyExtensionPolicy; its CRD schema has validated the whole spec.
type envoyExtensionPolicySpec struct {
	ExtProc []struct {
		BackendRefs []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Port      int32  `json:"port"`
		} `json:"backendRefs"`
		ShadowMode     *bool `json:"shadowMode"`
		FailOpen       *bool `json:"failOpen"`
		ProcessingMode *struct {
			Request  *processingModeOptions `json:"request"`
			Response *processingModeOptions `json:"response"`
		} `json:"processingMode"`
	} `json:"extProc"`
}

type processingModeOptions struct {
	Body       string   `json:"body"`
	Attributes []string `json:"attributes"`
}

// referenceGrantSpec is what the reference checks read of a ReferenceGrant.
type referenceGrantSpec struct {
	From []grantFrom `json:"from"`
	To   []grantTo   `json:"to"`
}

type grantFrom struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
}

type grantTo struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
}

// checkSet runs the policy on every object and the cross-file checks.
func checkSet(objs []*object) error {
	var errs []error
	for _, o := range objs {
		for _, err := range checkObject(o) {
			errs = append(errs, fmt.Errorf("%s: %w", o.name(), err))
		}
	}
	errs = append(errs, checkReferences(objs)...)
	errs = append(errs, checkExtProcsAgree(objs)...)
	return errors.Join(errs...)
}

func checkObject(o *object) []error {
	errs := checkNoCredentials(o.json)
	switch v := o.value.(type) {
	case *corev1.Secret:
		if len(v.Data)+len(v.StringData) > 0 {
			errs = append(errs, fmt.Errorf("Secret %s carries data: create it by hand (docs/envoy-istio.md), never ship it", v.Name))
		}
	case *appsv1.Deployment:
		errs = append(errs, checkPodSpec(&v.Spec.Template.Spec)...)
	case *corev1.Pod:
		errs = append(errs, checkPodSpec(&v.Spec)...)
	case *corev1.PersistentVolumeClaim:
		if _, ok := v.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || len(v.Spec.Resources.Requests) != 1 {
			errs = append(errs, fmt.Errorf("PersistentVolumeClaim %s: want resources.requests with storage only, got %v", v.Name, slices.Sorted(maps.Keys(v.Spec.Resources.Requests))))
		}
	case *networkingv1alpha3.EnvoyFilter:
		errs = append(errs, checkEnvoyFilter(v)...)
	case *extensionsv1alpha1.WasmPlugin:
		if v.GetFailStrategy() != extensionsv1alpha1.FailStrategy_FAIL_OPEN {
			errs = append(errs, fmt.Errorf("WasmPlugin failStrategy %v: want FAIL_OPEN", v.GetFailStrategy()))
		}
	case *envoyExtensionPolicySpec:
		errs = append(errs, checkExtensionPolicy(v)...)
	}
	for _, m := range o.envoy {
		switch e := m.(type) {
		case *extprocv3.ExternalProcessor:
			errs = append(errs, checkExtProc(e)...)
		case *wasmfilterv3.Wasm:
			if p := e.GetConfig().GetFailurePolicy(); p != wasmv3.FailurePolicy_FAIL_OPEN {
				errs = append(errs, fmt.Errorf("wasm filter failure_policy %v: want FAIL_OPEN", p))
			}
		}
	}
	return errs
}

// checkExtProc: observability mode (Envoy never waits for the collector),
// fail open, streamed bodies, the request.time attribute, and allowlisted
// headers only.
func checkExtProc(p *extprocv3.ExternalProcessor) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("ext_proc: "+format, args...)) }
	if !p.GetObservabilityMode() {
		fail("observability_mode must be true")
	}
	if !p.GetFailureModeAllow() {
		fail("failure_mode_allow must be true: capture fails open")
	}
	if p.GetGrpcService().GetEnvoyGrpc() == nil {
		fail("grpc_service must use envoy_grpc (a cluster), not google_grpc")
	}
	pm := p.GetProcessingMode()
	S, K := extprocv3.ProcessingMode_SEND, extprocv3.ProcessingMode_SKIP
	if pm.GetRequestHeaderMode() != S || pm.GetResponseHeaderMode() != S ||
		pm.GetRequestBodyMode() != extprocv3.ProcessingMode_STREAMED || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_STREAMED ||
		pm.GetRequestTrailerMode() != K || pm.GetResponseTrailerMode() != K {
		fail("processing_mode: headers %v/%v, bodies %v/%v, trailers %v/%v (request/response): want headers SEND, bodies STREAMED, trailers SKIP",
			pm.GetRequestHeaderMode(), pm.GetResponseHeaderMode(), pm.GetRequestBodyMode(), pm.GetResponseBodyMode(),
			pm.GetRequestTrailerMode(), pm.GetResponseTrailerMode())
	}
	if !slices.Contains(p.GetRequestAttributes(), "request.time") {
		fail("request_attributes must hold request.time, the arrival time")
	}
	patterns := p.GetForwardRules().GetAllowedHeaders().GetPatterns()
	if len(patterns) == 0 {
		fail("forward_rules.allowed_headers missing: every header, credentials included, would reach the collector")
	}
	for _, m := range patterns {
		if h := m.GetExact(); h == "" {
			fail("forward_rules.allowed_headers: only exact matchers, one per allowlisted header")
		} else if !slices.Contains(forwardedHeaders, h) {
			fail("forward_rules.allowed_headers: %q is not one of the allowlisted headers %v", h, forwardedHeaders)
		}
	}
	return errs
}

// checkExtProcsAgree: the ext_proc filter is written out in several files
// (Istio gateway and sidecar, standalone Envoy); they may differ only in
// grpc_service, where the collector is.
func checkExtProcsAgree(objs []*object) []error {
	var first *extprocv3.ExternalProcessor
	var firstName string
	var errs []error
	for _, o := range objs {
		for _, m := range o.envoy {
			p, ok := m.(*extprocv3.ExternalProcessor)
			if !ok {
				continue
			}
			p = proto.CloneOf(p)
			p.GrpcService = nil
			if first == nil {
				first, firstName = p, o.name()
			} else if !proto.Equal(first, p) {
				errs = append(errs, fmt.Errorf("%s: the ext_proc settings differ from %s's (only grpc_service may)", o.name(), firstName))
			}
		}
	}
	return errs
}

func checkEnvoyFilter(ef *networkingv1alpha3.EnvoyFilter) []error {
	var errs []error
	for i, p := range ef.GetConfigPatches() {
		at := fmt.Sprintf("configPatches[%d]", i)
		if op := p.GetPatch().GetOperation(); op != networkingv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE {
			errs = append(errs, fmt.Errorf("%s: operation %v: want INSERT_BEFORE the router", at, op))
		}
		fc := p.GetMatch().GetListener().GetFilterChain().GetFilter()
		if fc.GetName() != "envoy.filters.network.http_connection_manager" || fc.GetSubFilter().GetName() != "envoy.filters.http.router" {
			errs = append(errs, fmt.Errorf("%s: match filter envoy.filters.network.http_connection_manager, subFilter envoy.filters.http.router; got %q, %q", at, fc.GetName(), fc.GetSubFilter().GetName()))
		}
		switch c := p.GetMatch().GetContext(); c {
		case networkingv1alpha3.EnvoyFilter_GATEWAY:
			const label = "gateway.networking.k8s.io/gateway-name"
			if _, ok := ef.GetWorkloadSelector().GetLabels()[label]; !ok && len(ef.GetTargetRefs()) == 0 {
				errs = append(errs, fmt.Errorf("%s: context GATEWAY: select the gateway by the label %s", at, label))
			}
		case networkingv1alpha3.EnvoyFilter_SIDECAR_INBOUND:
			if len(ef.GetWorkloadSelector().GetLabels()) == 0 {
				errs = append(errs, fmt.Errorf("%s: context SIDECAR_INBOUND: select the model server's pods", at))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: context %v: want GATEWAY or SIDECAR_INBOUND", at, c))
		}
	}
	return errs
}

func checkExtensionPolicy(s *envoyExtensionPolicySpec) []error {
	var errs []error
	for i, e := range s.ExtProc {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("extProc[%d]: "+format, append([]any{i}, args...)...))
		}
		if e.ShadowMode == nil || !*e.ShadowMode {
			fail("shadowMode must be true (ext_proc observability mode)")
		}
		if e.FailOpen == nil || !*e.FailOpen {
			fail("failOpen must be true: capture fails open")
		}
		pm := e.ProcessingMode
		if pm == nil || pm.Request == nil || pm.Response == nil || pm.Request.Body != "Streamed" || pm.Response.Body != "Streamed" {
			fail("processingMode: want request and response bodies Streamed")
		} else if !slices.Contains(pm.Request.Attributes, "request.time") {
			fail("processingMode.request.attributes must hold request.time")
		}
	}
	return errs
}

var (
	// credentialShapes are literal credentials: none may appear anywhere.
	credentialShapes = []*regexp.Regexp{
		regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`),
		regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{20,}`),      // OpenAI-style API keys
		regexp.MustCompile(`\bhf_[A-Za-z0-9]{30,}`),        // Hugging Face tokens
		regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}`), // GitHub tokens
		regexp.MustCompile(`\bAKIA[0-9A-Z]{16}\b`),         // AWS access key ids
		regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}`),
	}
	// secretName matches an environment variable that holds a credential.
	secretName = regexp.MustCompile(`(?i)(key|token|secret|password|passwd|credential)`)
	// secretFlag matches a flag whose value is a credential (--admin-token,
	// --api-key); --hash-key-file names a file and is fine.
	secretFlag = regexp.MustCompile(`(?i)^--?[a-z0-9-]*(token|secret|password|key)(=|$)`)
)

// checkNoCredentials scans every key and string of a document for
// credentials written inline, and for Envoy's inline data sources.
func checkNoCredentials(doc []byte) []error {
	tree, err := jsonTree(doc)
	if err != nil {
		return []error{err}
	}
	var errs []error
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				switch k {
				case "inline_string", "inline_bytes", "inlineString", "inlineBytes":
					errs = append(errs, fmt.Errorf("%s.%s: inline data; reference a file or a Secret", at, k))
				}
				walk(strings.TrimPrefix(at+"."+k, "."), x[k])
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", at, i), e)
			}
		case string:
			for _, re := range credentialShapes {
				if re.MatchString(x) {
					errs = append(errs, fmt.Errorf("%s: looks like a credential written inline (%s)", at, re))
				}
			}
		}
	}
	walk("", tree)
	return errs
}

// checkPodSpec: no credential in env values or flags, and Reprise's own
// containers locked down (non-root, read-only root, admin on localhost).
func checkPodSpec(ps *corev1.PodSpec) []error {
	var errs []error
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
		}
		for _, r := range slices.Concat(slices.Sorted(maps.Keys(c.Resources.Requests)), slices.Sorted(maps.Keys(c.Resources.Limits))) {
			if !knownResources[r] {
				fail("resource %q: not a resource a node offers (add it to knownResources if it is one)", r)
			}
		}
		for _, e := range c.Env {
			if e.Value != "" && secretName.MatchString(e.Name) {
				fail("env %s has a literal value: use valueFrom.secretKeyRef", e.Name)
			}
		}
		for _, a := range slices.Concat(c.Command, c.Args) {
			if secretFlag.MatchString(a) {
				fail("flag %q passes a credential on the command line: read it from a file mounted from a Secret", a)
			}
		}
		if len(c.Command) == 0 || c.Command[0] != "proxy" {
			continue
		}
		sc := c.SecurityContext
		nonRoot := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
			ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
		if !nonRoot {
			fail("runAsNonRoot must be true")
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail("readOnlyRootFilesystem must be true")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail("allowPrivilegeEscalation must be false")
		}
		admin, ok := flagValues(c)["admin-listen"]
		if host, _, _ := strings.Cut(admin, ":"); !ok || (host != "127.0.0.1" && host != "localhost") {
			fail("--admin-listen %q: keep the admin API (control, rotate) on 127.0.0.1", admin)
		}
	}
	return errs
}

// knownResources are the container resource names the manifests may
// request. Resource maps take any key, and a misspelt one is a request the
// scheduler never satisfies or silently ignores.
var knownResources = map[corev1.ResourceName]bool{
	corev1.ResourceCPU: true, corev1.ResourceMemory: true, corev1.ResourceEphemeralStorage: true,
	"nvidia.com/gpu": true, "amd.com/gpu": true,
}

// flagValues reads a container's --name=value and --name value flags.
func flagValues(c corev1.Container) map[string]string {
	args := slices.Concat(c.Command[min(1, len(c.Command)):], c.Args)
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		name := strings.TrimLeft(args[i], "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			out[n] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out[name] = args[i+1]
			i++
		} else {
			out[name] = "true"
		}
	}
	return out
}
