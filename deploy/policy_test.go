package deploy

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
		errs = append(errs, checkPodSpec(o, &v.Spec.Template.Spec)...)
	case *corev1.Pod:
		errs = append(errs, checkPodSpec(o, &v.Spec)...)
	case *batchv1.Job:
		errs = append(errs, checkPodSpec(o, &v.Spec.Template.Spec)...)
		errs = append(errs, checkJob(v)...)
	case *corev1.ConfigMap:
		errs = append(errs, checkRunName(v)...)
	case *corev1.ServiceAccount:
		if v.AutomountServiceAccountToken == nil || *v.AutomountServiceAccountToken {
			errs = append(errs, fmt.Errorf("ServiceAccount %s: automountServiceAccountToken must be false: Reprise's pods call no Kubernetes API", v.Name))
		}
	case *tektonTaskSpec:
		errs = append(errs, checkTask(o, v)...)
	case *tektonPipelineSpec:
		errs = append(errs, checkPipeline(v)...)
	case *tektonPipelineRunSpec:
		errs = append(errs, checkPipelineRun(o, v)...)
	case *llmInferenceServiceSpec:
		for _, c := range v.Template.Containers {
			errs = append(errs, checkResourceNames(c.Name, c.Resources)...)
		}
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

// checkPodSpec: no credential in env values or flags; Reprise's own
// containers locked down (non-root, read-only root, no privilege
// escalation, no capabilities), sized (requests and a memory limit), on
// the image kustomize overrides, the admin API on localhost; and the pods
// of the newer manifests within the restricted Pod Security Standard.
func checkPodSpec(o *object, ps *corev1.PodSpec) []error {
	var errs []error
	if restrictedSource(o.source()) {
		errs = append(errs, checkRestricted(ps)...)
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
		}
		errs = append(errs, checkResourceNames(c.Name, c.Resources)...)
		errs = append(errs, checkEnvAndFlags(c.Name, c.Env, slices.Concat(c.Command, c.Args))...)
		if !isReprise(c) {
			continue
		}
		sc := c.SecurityContext
		nonRoot := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
			ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
		if !nonRoot {
			fail("runAsNonRoot must be true")
		}
		errs = append(errs, checkContainerSecurity(c.Name, sc)...)
		errs = append(errs, checkSized(c.Name, c.Resources)...)
		if err := checkImage(o.source(), c.Image); err != nil {
			fail("%v", err)
		}
		if commandName(c) != "proxy" {
			continue
		}
		admin, ok := flagValues(c)["admin-listen"]
		if host, _, _ := strings.Cut(admin, ":"); !ok || (host != "127.0.0.1" && host != "localhost") {
			fail("--admin-listen %q: keep the admin API (control, rotate) on 127.0.0.1", admin)
		}
	}
	return errs
}

// commandName is the program a container runs ("proxy" for
// ["/usr/local/bin/proxy"]), empty when the image's entrypoint is used.
func commandName(c corev1.Container) string {
	if len(c.Command) == 0 {
		return ""
	}
	return path.Base(c.Command[0])
}

// isReprise reports whether the container runs one of Reprise's programs.
func isReprise(c corev1.Container) bool {
	n := commandName(c)
	return n == "proxy" || n == "replay"
}

// checkResourceNames: resource maps take any key, and a misspelt one is a
// request the scheduler never satisfies or silently ignores.
func checkResourceNames(container string, r corev1.ResourceRequirements) []error {
	var errs []error
	for _, n := range slices.Concat(slices.Sorted(maps.Keys(r.Requests)), slices.Sorted(maps.Keys(r.Limits))) {
		if !knownResources[n] {
			errs = append(errs, fmt.Errorf("container %s: resource %q: not a resource a node offers (add it to knownResources if it is one)", container, n))
		}
	}
	return errs
}

// checkEnvAndFlags: no credential in an environment value or on the
// command line (both are visible to anyone who can read the object).
func checkEnvAndFlags(container string, env []corev1.EnvVar, argv []string) []error {
	var errs []error
	for _, e := range env {
		if e.Value != "" && secretName.MatchString(e.Name) {
			errs = append(errs, fmt.Errorf("container %s: env %s has a literal value: use valueFrom.secretKeyRef", container, e.Name))
		}
	}
	for _, a := range argv {
		if secretFlag.MatchString(a) {
			errs = append(errs, fmt.Errorf("container %s: flag %q passes a credential on the command line: read it from a file mounted from a Secret", container, a))
		}
	}
	return errs
}

// checkContainerSecurity: a read-only root filesystem, no privilege
// escalation, every capability dropped.
func checkContainerSecurity(container string, sc *corev1.SecurityContext) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{container}, args...)...))
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail("readOnlyRootFilesystem must be true")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("allowPrivilegeEscalation must be false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		fail("capabilities: drop ALL and add none")
	}
	return errs
}

// checkSized: CPU and memory requests (the scheduler places the pod where
// they fit) and a memory limit (a leak ends the pod, not the node). No
// CPU limit is required: throttling would distort a replay's timing.
func checkSized(container string, r corev1.ResourceRequirements) []error {
	_, cpu := r.Requests[corev1.ResourceCPU]
	_, mem := r.Requests[corev1.ResourceMemory]
	_, limit := r.Limits[corev1.ResourceMemory]
	if !cpu || !mem || !limit {
		return []error{fmt.Errorf("container %s: want cpu and memory requests and a memory limit, got requests %v, limits %v",
			container, slices.Sorted(maps.Keys(r.Requests)), slices.Sorted(maps.Keys(r.Limits)))}
	}
	return nil
}

// restrictedSource reports whether the manifests at src (a path under
// deploy/) are held to the restricted Pod Security Standard as a whole:
// the capture proxy, the replay and their examples (OpenShift's
// restricted-v2 constraint asks the same).
func restrictedSource(src string) bool {
	return strings.HasPrefix(src, "k8s/replay/") || strings.HasPrefix(src, "k8s/proxy/") || strings.HasPrefix(src, "k8s/examples/") ||
		slices.Contains([]string{"k8s/replay", "k8s/proxy", "k8s/examples"}, src)
}

// checkRestricted: the restricted Pod Security Standard for every container
// of the pod (busybox helpers included): non-root, seccomp RuntimeDefault,
// no privilege escalation, every capability dropped, no host namespaces.
func checkRestricted(ps *corev1.PodSpec) []error {
	var errs []error
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		errs = append(errs, errors.New("securityContext.runAsNonRoot must be true for the whole pod"))
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errs = append(errs, errors.New("securityContext.seccompProfile.type must be RuntimeDefault"))
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		errs = append(errs, errors.New("no host namespaces"))
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		errs = append(errs, checkContainerSecurity(c.Name, c.SecurityContext)...)
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			errs = append(errs, fmt.Errorf("container %s: privileged", c.Name))
		}
	}
	return errs
}

// imagePlaceholder is the image the newer manifests name, which each
// kustomization's `images:` entry (or a Tekton image parameter) replaces
// with the image `make image` built and the user pushed.
const imagePlaceholder = "reprise:latest"

// checkImage: a Reprise container runs Reprise's image: the placeholder
// under k8s/replay, k8s/proxy and k8s/examples; elsewhere an image whose
// repository is named reprise.
func checkImage(src, image string) error {
	if restrictedSource(src) {
		if image != imagePlaceholder {
			return fmt.Errorf("image %q: want the placeholder %s, which kustomize's images: replaces", image, imagePlaceholder)
		}
		return nil
	}
	repo, _, _ := strings.Cut(path.Base(image), ":")
	if repo != "reprise" {
		return fmt.Errorf("image %q: not Reprise's image", image)
	}
	return nil
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
