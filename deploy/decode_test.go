package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sjson "sigs.k8s.io/json"
	kustypes "sigs.k8s.io/kustomize/api/types"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// An object is a decoded document.
type object struct {
	document
	kind  string            // "apps/v1 Deployment", or "envoy bootstrap"
	meta  metav1.ObjectMeta // empty for an Envoy bootstrap
	value any               // *appsv1.Deployment, *networkingv1alpha3.EnvoyFilter, *bootstrapv3.Bootstrap, ...
	// envoy holds every Envoy message found inside the object by unpacking
	// its typed_config values (an EnvoyFilter's patch, a bootstrap's
	// filters), each validated, for the policy checks.
	envoy []proto.Message
}

// A decoder decodes o.json strictly into o.value; it may fill o.envoy.
type decoder func(o *object) error

// decoders maps "apiVersion kind" to the strict decoder of that kind. A kind
// missing here fails the test: a new manifest cannot go unvalidated.
var decoders = map[string]decoder{
	"v1 Namespace":             k8s[corev1.Namespace],
	"v1 Service":               k8s[corev1.Service],
	"v1 PersistentVolumeClaim": k8s[corev1.PersistentVolumeClaim],
	// A Secret decodes so that the policy can say why it must not be here.
	"v1 Secret":          k8s[corev1.Secret],
	"v1 Pod":             k8s[corev1.Pod],
	"v1 ServiceAccount":  k8s[corev1.ServiceAccount],
	"v1 ConfigMap":       k8s[corev1.ConfigMap],
	"apps/v1 Deployment": k8s[appsv1.Deployment],
	"batch/v1 Job":       k8s[batchv1.Job],

	"networking.istio.io/v1alpha3 EnvoyFilter": istio(func() proto.Message { return new(networkingv1alpha3.EnvoyFilter) }),
	"extensions.istio.io/v1alpha1 WasmPlugin":  istio(func() proto.Message { return new(extensionsv1alpha1.WasmPlugin) }),

	"gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy": crdSchema[envoyExtensionPolicySpec],
	"gateway.networking.k8s.io/v1beta1 ReferenceGrant":    crdSchema[referenceGrantSpec],
	"serving.kserve.io/v1alpha2 LLMInferenceService":      crdSchema[llmInferenceServiceSpec],
	"tekton.dev/v1 Task":        crdSchema[tektonTaskSpec],
	"tekton.dev/v1 Pipeline":    crdSchema[tektonPipelineSpec],
	"tekton.dev/v1 PipelineRun": crdSchema[tektonPipelineRunSpec],

	"kustomize.config.k8s.io/v1beta1 Kustomization": decodeKustomization,
	"kustomize.config.k8s.io/v1alpha1 Component":    decodeKustomization,
	"envoy bootstrap": decodeBootstrap,
}

// decode dispatches on apiVersion and kind; a document with neither is an
// Envoy bootstrap. Errors name the file.
func decode(d document) (*object, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(d.json, &tm); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name(), err)
	}
	o := &object{document: d, kind: tm.APIVersion + " " + tm.Kind}
	switch {
	case tm.APIVersion == "" && tm.Kind == "":
		o.kind = "envoy bootstrap"
	case tm.APIVersion == "":
		return nil, fmt.Errorf("%s: %s without apiVersion", d.name(), tm.Kind)
	case tm.Kind == "":
		return nil, fmt.Errorf("%s: %s object without kind", d.name(), tm.APIVersion)
	}
	dec, ok := decoders[o.kind]
	if !ok {
		return nil, fmt.Errorf("%s: no strict decoder for %q: add one to deploy/decode_test.go", d.name(), o.kind)
	}
	if err := dec(o); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.name(), strings.TrimSpace(o.kind+" "+o.meta.Name), err)
	}
	return o, nil
}

// strictJSON decodes as the kube-apiserver does with fieldValidation=Strict:
// field names case-sensitive, unknown and duplicate fields rejected.
// (encoding/json, under sigs.k8s.io/yaml's UnmarshalStrict, would accept
// "containerport" for "containerPort".)
func strictJSON(b []byte, v any) error {
	strict, err := k8sjson.UnmarshalStrict(b, v, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// k8s decodes a Kubernetes built-in kind into its k8s.io/api type.
func k8s[T any](o *object) error {
	v := new(T)
	if err := strictJSON(o.json, v); err != nil {
		return err
	}
	o.value = v
	var m struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(o.json, &m); err != nil {
		return err
	}
	o.meta = m.Metadata
	return nil
}

// customResource is a custom resource's envelope: its spec is decoded by the
// kind's own decoder.
type customResource struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

func decodeEnvelope(o *object) (json.RawMessage, error) {
	var cr customResource
	if err := strictJSON(o.json, &cr); err != nil {
		return nil, err
	}
	o.meta = cr.Metadata
	if len(cr.Spec) == 0 {
		return nil, errors.New("no spec")
	}
	return cr.Spec, nil
}

// istio decodes an Istio resource's spec with protojson, which rejects
// unknown fields; istio.io/api's own UnmarshalJSON accepts them.
func istio(newSpec func() proto.Message) decoder {
	return func(o *object) error {
		raw, err := decodeEnvelope(o)
		if err != nil {
			return err
		}
		spec := newSpec()
		if err := protojson.Unmarshal(raw, spec); err != nil {
			return fmt.Errorf("spec: %w", err)
		}
		o.value = spec
		switch s := spec.(type) {
		case *networkingv1alpha3.EnvoyFilter:
			return decodePatches(o, s)
		case *extensionsv1alpha1.WasmPlugin:
			if s.GetPluginConfig() == nil {
				return errors.New("spec.pluginConfig: missing")
			}
			b, err := protojson.Marshal(s.GetPluginConfig())
			if err != nil {
				return err
			}
			if _, err := decodeWasmConfig(b); err != nil {
				return fmt.Errorf("spec.pluginConfig: %w", err)
			}
		}
		return nil
	}
}

// decodePatches decodes each EnvoyFilter patch value (a Struct that Istio
// turns into an Envoy message) into the Envoy type its applyTo names,
// strictly, and validates it with everything it packs.
func decodePatches(o *object, ef *networkingv1alpha3.EnvoyFilter) error {
	var errs []error
	for i, p := range ef.GetConfigPatches() {
		at := fmt.Sprintf("spec.configPatches[%d]", i)
		var m proto.Message
		switch p.GetApplyTo() {
		case networkingv1alpha3.EnvoyFilter_HTTP_FILTER:
			m = new(hcmv3.HttpFilter)
		default:
			errs = append(errs, fmt.Errorf("%s: no decoder for applyTo %v: add one to deploy/decode_test.go", at, p.GetApplyTo()))
			continue
		}
		b, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value: %w", at, err))
			continue
		}
		if err := protojson.Unmarshal(b, m); err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value as %s: %w", at, m.ProtoReflect().Descriptor().FullName(), err))
			continue
		}
		found, err := validateEnvoy(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.patch.value: %w", at, err))
			continue
		}
		o.envoy = append(o.envoy, found...)
	}
	return errors.Join(errs...)
}

// decodeBootstrap decodes a standalone Envoy bootstrap with protojson
// (unknown fields rejected, every typed_config resolved to its registered
// type) and validates it and everything it packs.
func decodeBootstrap(o *object) error {
	b := new(bootstrapv3.Bootstrap)
	if err := protojson.Unmarshal(o.json, b); err != nil {
		return err
	}
	found, err := validateEnvoy(b)
	if err != nil {
		return err
	}
	o.value, o.envoy = b, found
	return nil
}

// decodeKustomization decodes a Kustomization or a Component strictly into
// kustomize's own type (kustomize rejects unknown fields too), and requires
// every resource to exist (a manifest file, or a directory holding a
// kustomization.yaml) and every component to be a directory holding one.
// What the patches inside say is checked on the built manifests
// (render_test.go).
func decodeKustomization(o *object) error {
	k := new(kustypes.Kustomization)
	if err := strictJSON(o.json, k); err != nil {
		return err
	}
	if k.Kind == kustypes.KustomizationKind && len(k.Resources) == 0 {
		return errors.New("no resources")
	}
	var errs []error
	exists := func(what, r string, dirOnly bool) {
		p := path.Join(path.Dir(o.file), r)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %s: %w", what, r, err))
		case st.IsDir():
			if _, err := os.Stat(path.Join(p, "kustomization.yaml")); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: not a kustomization: %w", what, r, err))
			}
		case dirOnly:
			errs = append(errs, fmt.Errorf("%s %s: not a directory", what, r))
		case !strings.HasSuffix(p, ".yaml"):
			errs = append(errs, fmt.Errorf("%s %s: not a manifest", what, r))
		}
	}
	for _, r := range k.Resources {
		exists("resource", r, false)
	}
	for _, c := range k.Components {
		exists("component", c, true)
	}
	o.value = k
	return errors.Join(errs...)
}
