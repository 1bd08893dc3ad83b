package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPlantedTypos misspells every field of every document in turn (the
// last letter doubled: "ports" → "portss") and requires the set to be
// rejected with an error naming the file and the field. Label and
// annotation keys are free-form and left alone; selector keys are not:
// a misspelt selector selects nothing, which the reference checks catch.
func TestPlantedTypos(t *testing.T) {
	docs, objs := mustLoad(t)
	planted := map[string]int{}
	for i, d := range docs {
		tree, err := jsonTree(d.json)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range keyPaths(tree, nil) {
			if freeForm(p) {
				continue
			}
			key := p[len(p)-1]
			typo := key + key[len(key)-1:]
			m, _ := jsonTree(d.json)
			renameKey(m, p, typo)
			planted[d.file]++
			md := d
			if md.json, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			err := validateReplaced(objs, i, md)
			switch {
			case err == nil:
				t.Errorf("%s: %s misspelt %q: accepted", d.name(), strings.Join(p, "."), typo)
			case !strings.Contains(err.Error(), "deploy/"+d.file):
				t.Errorf("%s: %s misspelt: the error does not name the file: %v", d.name(), strings.Join(p, "."), err)
			case !strings.Contains(err.Error(), typo) && !strings.Contains(err.Error(), key):
				t.Errorf("%s: %s misspelt: the error names neither %q nor %q: %v", d.name(), strings.Join(p, "."), key, typo, err)
			}
		}
	}
	for _, d := range docs {
		if planted[d.file] == 0 {
			t.Errorf("deploy/%s: no field to misspell", d.file)
		}
	}
	t.Logf("typos planted per file: %v", planted)
}

// keyPaths lists the path of every object key in v, depth first; array
// elements appear as their index.
func keyPaths(v any, at []string) [][]string {
	var out [][]string
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := append(slices.Clone(at), k)
			out = append(out, p)
			out = append(out, keyPaths(x[k], p)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, keyPaths(e, append(slices.Clone(at), strconv.Itoa(i)))...)
		}
	}
	return out
}

// freeForm reports whether the key at p is a label or annotation name,
// which any value may take.
func freeForm(p []string) bool {
	return len(p) >= 2 && (p[len(p)-2] == "labels" || p[len(p)-2] == "annotations")
}

// renameKey renames the key at path p of tree to name.
func renameKey(tree any, p []string, name string) {
	v := tree
	for _, k := range p[:len(p)-1] {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, _ := strconv.Atoi(k)
			v = x[i]
		}
	}
	m := v.(map[string]any)
	last := p[len(p)-1]
	m[name] = m[last]
	delete(m, last)
}

// setPath sets the value at a dotted path ("spec.extProc.0.failOpen") of a
// document tree, creating maps on the way.
func setPath(tree any, path string, value any) error {
	keys := strings.Split(path, ".")
	v := tree
	for i, k := range keys {
		last := i == len(keys)-1
		switch x := v.(type) {
		case map[string]any:
			if last {
				x[k] = value
				return nil
			}
			if x[k] == nil {
				x[k] = map[string]any{}
			}
			v = x[k]
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n >= len(x) {
				return fmt.Errorf("%s: no element %s", path, k)
			}
			if last {
				x[n] = value
				return nil
			}
			v = x[n]
		default:
			return fmt.Errorf("%s: %s is not a map or a list", path, k)
		}
	}
	return nil
}

// TestPolicyRejects plants one policy violation or broken reference at a
// time and requires the set to be rejected with an error naming the file
// and saying what is wrong: the checks of TestManifests are not vacuous.
func TestPolicyRejects(t *testing.T) {
	const (
		gw      = "istio/envoyfilter-gateway.yaml"
		extProc = "spec.configPatches.0.patch.value.typed_config."
		wasm    = "istio/wasmplugin.yaml"
		eep     = "envoy-gateway/envoyextensionpolicy.yaml"
		dep     = "k8s/collector/deployment.yaml"
		pod     = "spec.template.spec."
		ctr     = pod + "containers.0."
		env     = "envoy/envoy.yaml"
		envW    = "envoy/envoy-wasm.yaml"
		hcm     = "static_resources.listeners.0.filter_chains.0.filters.0.typed_config."

		job         = "k8s/replay/base/job.yaml"
		task        = "k8s/examples/ci-gate/tasks.yaml"
		pipeline    = "k8s/examples/ci-gate/pipeline.yaml"
		pipelineRun = "k8s/examples/ci-gate/pipelinerun.yaml"
	)
	header := func(h string) any { return map[string]any{"exact": h} }
	cases := []struct {
		name  string
		file  string // the document changed, or "" to add doc
		path  string
		value any
		doc   string // a document to add (JSON)
		want  string
	}{
		{"ext_proc fails closed", gw, extProc + "failure_mode_allow", false, "", "failure_mode_allow must be true"},
		{"ext_proc waits for the collector", gw, extProc + "observability_mode", false, "", "observability_mode must be true"},
		{"ext_proc forwards Authorization", gw, extProc + "forward_rules.allowed_headers.patterns.0", header("authorization"), "", `"authorization"`},
		{"ext_proc forwards every header", gw, extProc + "forward_rules", nil, "", "allowed_headers missing"},
		{"ext_proc body mode sends nothing in observability mode", gw, extProc + "processing_mode.response_body_mode", "FULL_DUPLEX_STREAMED", "", "processing_mode"},
		{"ext_proc without arrival time", gw, extProc + "request_attributes", []any{}, "", "request.time"},
		{"ext_proc copies drift apart", gw, extProc + "deferred_close_timeout", "9s", "", "differ from"},
		{"ext_proc to an unknown enum", gw, extProc + "processing_mode.request_body_mode", "STREAMING", "", "STREAMING"},
		{"ext_proc to the ingest port", gw, extProc + "grpc_service.envoy_grpc.cluster_name", "outbound|9003||reprise-collector.reprise.svc.cluster.local", "", "not gRPC"},
		{"ext_proc to a missing Service", gw, extProc + "grpc_service.envoy_grpc.cluster_name", "outbound|9002||collector.reprise.svc.cluster.local", "", "no Service collector"},
		{"ext_proc authority of another host", gw, extProc + "grpc_service.envoy_grpc.authority", "collector", "", "authority"},
		{"gateway filter not selected by gateway name", gw, "spec.workloadSelector.labels", map[string]any{"app": "gateway"}, "", "gateway.networking.k8s.io/gateway-name"},
		{"filter after the router", gw, "spec.configPatches.0.patch.operation", "INSERT_AFTER", "", "INSERT_BEFORE"},
		{"patch kind without a decoder", gw, "spec.configPatches.0.applyTo", "CLUSTER", "", "no decoder for applyTo"},
		{"wasm plugin fails closed", wasm, "spec.failStrategy", "FAIL_CLOSE", "", "want FAIL_OPEN"},
		{"wasm plugin content mode", wasm, "spec.pluginConfig.content", "everything", "", "content: \"everything\""},
		{"wasm plugin sample above 1", wasm, "spec.pluginConfig.sample", 2, "", "sample: want a number from 0 to 1"},
		{"wasm plugin key misspelt", wasm, "spec.pluginConfig.flush_mss", 1000, "", "flush_mss"},
		{"policy fails closed", eep, "spec.extProc.0.failOpen", false, "", "failOpen must be true"},
		{"policy waits for the collector", eep, "spec.extProc.0.shadowMode", false, "", "shadowMode must be true"},
		{"policy body mode not in the CRD's enum", eep, "spec.extProc.0.processingMode.request.body", "Stream", "", `"Stream" not one of`},
		{"policy to a missing port", eep, "spec.extProc.0.backendRefs.0.port", 9009, "", "no port 9009"},
		{"policy from a namespace without grant", eep, "metadata.namespace", "gateways", "", "no ReferenceGrant"},
		{"policy target of a wrong type", eep, "spec.targetRefs.0.name", 7, "", "want string"},
		{"collector API key in env", dep, ctr + "env", []any{map[string]any{"name": "OPENAI_API_KEY", "value": "abc"}}, "", "literal value"},
		{"collector token as a flag", dep, ctr + "args.4", "--admin-token=abc", "", "passes a credential"},
		{"collector admin exposed", dep, ctr + "args.4", "--admin-listen=:8091", "", "127.0.0.1"},
		{"collector root filesystem writable", dep, ctr + "securityContext.readOnlyRootFilesystem", false, "", "readOnlyRootFilesystem"},
		{"collector as root", dep, pod + "securityContext.runAsNonRoot", false, "", "runAsNonRoot"},
		{"collector writes off the volume", dep, ctr + "args.2", "--capture-dir=/tmp", "", "--capture-dir"},
		{"collector listens off its ports", dep, ctr + "args.0", "--extproc-listen=:9999", "", "--extproc-listen"},
		{"collector claim missing", dep, pod + "volumes.0.persistentVolumeClaim.claimName", "captures", "", "no PersistentVolumeClaim captures"},
		{"service to a missing port", "k8s/collector/service.yaml", "spec.ports.0.targetPort", "gprc", "", "targetPort gprc"},
		{"credential in an annotation", "k8s/collector/pvc.yaml", "metadata.annotations", map[string]any{"note": "sk-abcdefghijklmnopqrstuvwx"}, "", "credential written inline"},
		{"kustomization resource missing", "istio/kustomization.yaml", "resources.1", "envoyfilter.yaml", "", "resource envoyfilter.yaml"},
		{"envoy admin on every address", env, "admin.address.socket_address.address", "0.0.0.0", "", "loopback"},
		{"envoy route to a missing cluster", env, hcm + "route_config.virtual_hosts.0.routes.0.route.cluster", "vllm", "", `cluster "vllm"`},
		{"envoy gRPC cluster over HTTP/1.1", env, "static_resources.clusters.1.typed_extension_protocol_options", nil, "", "http2_protocol_options"},
		{"envoy field invalid for its type", env, "static_resources.clusters.0.connect_timeout", "-1s", "", "Cluster.ConnectTimeout"},
		{"envoy wasm fails closed", envW, hcm + "http_filters.0.typed_config.config.failure_policy", "FAIL_CLOSED", "", "want FAIL_OPEN"},
		{"envoy wasm configuration key misspelt", envW, hcm + "http_filters.0.typed_config.config.configuration.value", `{"collector_cluster": "reprise_ingest", "flush_mss": 1000}`, "", "flush_mss"},
		{"envoy wasm collector cluster missing", envW, hcm + "http_filters.0.typed_config.config.configuration.value", `{"collector_cluster": "collector"}`, "", `cluster "collector"`},
		{"envoy inline module", envW, hcm + "http_filters.0.typed_config.config.vm_config.code.local", map[string]any{"inline_string": "x"}, "", "inline data"},
		{"replay as root", job, pod + "securityContext.runAsNonRoot", false, "", "runAsNonRoot"},
		{"replay results of no run of its own", job, ctr + "args.1", "--output-dir=/data/results/run", "", "a directory of the run's own"},
		{"replay without a memory limit", job, ctr + "resources.limits", map[string]any{}, "", "a memory limit"},
		{"replay API key in env", job, ctr + "env.1", map[string]any{"name": "OPENAI_API_KEY", "value": "abc"}, "", "literal value"},
		{"replay service account missing", job, pod + "serviceAccountName", "replayer", "", "no ServiceAccount replayer"},
		{"replay sharded without an Indexed Job", job, ctr + "args.2", "--shard=auto/4", "", "only an Indexed Job sets"},
		{"replay without a subcommand", job, ctr + "args.0", "--quiet", "", "replay without a subcommand"},
		{"replay image not the placeholder", job, ctr + "image", "ghcr.io/reprise-llm/reprise:latest", "", "want the placeholder"},
		{"proxy image not the placeholder", "k8s/proxy/deployment.yaml", ctr + "image", "reprise:v1", "", "want the placeholder"},
		{"helper pod without seccomp", "k8s/replay/setup/data-pod.yaml", "spec.securityContext.seccompProfile", nil, "", "seccompProfile.type must be RuntimeDefault"},
		{"service account token mounted", "k8s/replay/setup/serviceaccount.yaml", "automountServiceAccountToken", true, "", "automountServiceAccountToken must be false"},
		{"kustomization component missing", "k8s/replay/overlays/sharded/kustomization.yaml", "components.0", "../../components/shards", "", "component ../../components/shards"},
		{"model server resource misspelt", "k8s/examples/kserve-llmisvc/llminferenceservice.yaml", "spec.template.containers.0.resources.limits", map[string]any{"nvidia.com/gpus": "1"}, "", `"nvidia.com/gpus"`},
		{"Tekton step as root", task, "spec.stepTemplate.securityContext.runAsNonRoot", false, "", "runAsNonRoot must be true"},
		{"Tekton shards in one directory", task, "spec.steps.0.args.9", "--output-dir=/data/results/$(params.run)/shards", "", "each shard needs its own"},
		{"Tekton parameter not declared", task, "spec.steps.0.args.1", "--target=$(params.url)", "", "no param url declared"},
		{"Tekton image not the placeholder", task, "spec.params.0.default", "ghcr.io/x/reprise:v1", "", "want the placeholder"},
		{"Tekton volume misspelt", task, "spec.volumes.0.emptyDir", map[string]any{"sizelimit": "1Gi"}, "", `unknown field "[0].emptyDir.sizelimit"`},
		{"Tekton volume missing", task, "spec.stepTemplate.volumeMounts.0.name", "scratch", "", "volumeMount scratch: no such volume"},
		{"Tekton matrix not N shards", pipeline, "spec.tasks.0.params.5.value", "3", "", "but the matrix runs 4 shards"},
		{"Tekton parameter of another Task", pipeline, "spec.tasks.2.params.3.name", "fail_if", "", "Task reprise-gate has no such parameter"},
		{"Tekton Task missing", pipeline, "spec.tasks.1.taskRef.name", "merge", "", "no Task merge"},
		{"Tekton run as root", pipelineRun, "spec.taskRunTemplate.podTemplate.securityContext.runAsNonRoot", false, "", "runAsNonRoot must be true"},
		{"Tekton run security misspelt", pipelineRun, "spec.taskRunTemplate.podTemplate.securityContext.fsgroup", 65532, "", `unknown field "fsgroup"`},
		{"Tekton run without a required parameter", pipelineRun, "spec.params.3.name", "base", "", "parameter baseline has no default and is not passed"},
		{"Tekton run on a missing claim", pipelineRun, "spec.workspaces.0.persistentVolumeClaim.claimName", "results", "", "no PersistentVolumeClaim results"},
		{"a Secret with data", "", "", nil, `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reprise-hash-key", "namespace": "reprise"}, "stringData": {"key": "k"}}`, "never ship it"},
		{"a kind without a decoder", "", "", nil, `{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}}`, `no strict decoder for "apps/v1 StatefulSet"`},
	}
	docs, _ := mustLoad(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := slices.Clone(docs)
			var name string
			if c.file == "" {
				d := document{file: "planted.yaml", count: 1, json: []byte(c.doc)}
				set, name = append(set, d), d.name()
			} else {
				i := slices.IndexFunc(set, func(d document) bool { return d.file == c.file })
				if i < 0 {
					t.Fatalf("no deploy/%s", c.file)
				}
				tree, err := jsonTree(set[i].json)
				if err != nil {
					t.Fatal(err)
				}
				if err := setPath(tree, c.path, c.value); err != nil {
					t.Fatal(err)
				}
				if set[i].json, err = json.Marshal(tree); err != nil {
					t.Fatal(err)
				}
				name = set[i].name()
			}
			_, err := decodeAll(set)
			switch {
			case err == nil:
				t.Fatalf("accepted")
			case !strings.Contains(err.Error(), name):
				t.Fatalf("the error does not name %s: %v", name, err)
			case !strings.Contains(err.Error(), c.want):
				t.Fatalf("the error does not say %q: %v", c.want, err)
			}
		})
	}
}
