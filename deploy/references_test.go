package deploy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kustypes "sigs.k8s.io/kustomize/api/types"

	"google.golang.org/protobuf/encoding/protojson"
)

// checkReferences checks what one manifest names in another, as the cluster
// would resolve it: selectors select, ports and volumes exist, the
// collector's flags match its ports and mounts, and every Envoy cluster an
// Istio or Envoy Gateway resource names is the collector Service's.
func checkReferences(objs []*object) []error {
	var errs []error
	for _, o := range objs {
		var es []error
		switch v := o.value.(type) {
		case *appsv1.Deployment:
			es = checkDeployment(objs, o, v)
		case *corev1.Pod:
			es = checkPod(objs, o, &v.Spec)
		case *batchv1.Job:
			es = append(checkPod(objs, o, &v.Spec.Template.Spec), checkJobReferences(objs, o, v)...)
		case *tektonPipelineSpec:
			es = checkPipelineReferences(objs, o, v)
		case *tektonPipelineRunSpec:
			es = checkPipelineRunReferences(objs, o, v)
		case *corev1.Service:
			es = checkService(objs, v)
		case *networkingv1alpha3.EnvoyFilter:
			for _, m := range o.envoy {
				if p, ok := m.(*extprocv3.ExternalProcessor); ok {
					g := p.GetGrpcService().GetEnvoyGrpc()
					es = append(es, checkIstioCluster(objs, g.GetClusterName(), g.GetAuthority(), true)...)
				}
			}
		case *extensionsv1alpha1.WasmPlugin:
			b, _ := protojson.Marshal(v.GetPluginConfig())
			if c, err := decodeWasmConfig(b); err == nil {
				es = checkIstioCluster(objs, c.CollectorCluster, c.CollectorAuthority, false)
			}
		case *envoyExtensionPolicySpec:
			es = checkBackendRefs(objs, o, v)
		case *bootstrapv3.Bootstrap:
			es = checkBootstrap(o, v)
		}
		for _, e := range es {
			errs = append(errs, fmt.Errorf("%s: %w", o.name(), e))
		}
	}
	return errs
}

// find returns the object of that kind, namespace and name ("" namespace:
// the one the manifest is applied to).
func find[T any](objs []*object, namespace, name string) (*T, bool) {
	for _, o := range objs {
		if v, ok := o.value.(*T); ok && o.meta.Namespace == namespace && o.meta.Name == name {
			return v, true
		}
	}
	return nil, false
}

func checkDeployment(objs []*object, o *object, d *appsv1.Deployment) []error {
	var errs []error
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		errs = append(errs, errors.New("spec.selector.matchLabels: missing"))
	} else if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		errs = append(errs, fmt.Errorf("spec.selector %v does not select the pod template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels))
	}
	return append(errs, checkPod(objs, o, &d.Spec.Template.Spec)...)
}

// checkPod: volumes and claims exist; a proxy container's --capture-dir is
// a claim's mount, its --hash-key-file in a Secret's, its listeners on its
// container ports; a podAffinity selects a Deployment's pods.
func checkPod(objs []*object, o *object, ps *corev1.PodSpec) []error {
	var errs []error
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
		if c := v.PersistentVolumeClaim; c != nil {
			if _, ok := find[corev1.PersistentVolumeClaim](objs, o.meta.Namespace, c.ClaimName); !ok {
				errs = append(errs, fmt.Errorf("volume %s: no PersistentVolumeClaim %s in its namespace under deploy/", v.Name, c.ClaimName))
			}
		}
	}
	if sa := ps.ServiceAccountName; sa != "" && sa != "default" {
		if _, ok := find[corev1.ServiceAccount](objs, o.meta.Namespace, sa); !ok {
			errs = append(errs, fmt.Errorf("serviceAccountName %s: no ServiceAccount %s in its namespace under deploy/", sa, sa))
		}
	}
	if a := ps.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, t := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			var sel map[string]string
			if s := t.PodAffinityTerm.LabelSelector; s != nil {
				sel = s.MatchLabels
			}
			if !selects(sel, podLabels(o)) {
				errs = append(errs, fmt.Errorf("podAntiAffinity matchLabels %v do not select the pod's own labels %v: the pods would not be spread", sel, podLabels(o)))
			}
		}
	}
	if a := ps.Affinity; a != nil && a.PodAffinity != nil {
		for _, t := range a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			var sel map[string]string
			if t.LabelSelector != nil {
				sel = t.LabelSelector.MatchLabels
			}
			if len(podsSelected(objs, o.meta.Namespace, sel)) == 0 {
				errs = append(errs, fmt.Errorf("podAffinity matchLabels %v selects no Deployment's pods under deploy/", sel))
			}
		}
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		mounts := map[string]corev1.Volume{} // mount path → volume
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("container %s: volumeMount %s: no such volume", c.Name, m.Name))
			}
			mounts[m.MountPath] = v
		}
		errs = append(errs, checkConfigMapRefs(objs, o, c)...)
		if commandName(c) != "proxy" {
			continue
		}
		flags := flagValues(c)
		if dir, ok := flags["capture-dir"]; !ok || mounts[dir].PersistentVolumeClaim == nil {
			errs = append(errs, fmt.Errorf("container %s: --capture-dir %q is not a PersistentVolumeClaim's mount path", c.Name, dir))
		}
		if f, ok := flags["hash-key-file"]; ok && mounts[path.Dir(f)].Secret == nil {
			errs = append(errs, fmt.Errorf("container %s: --hash-key-file %q is not in a Secret volume's mount path", c.Name, f))
		}
		for _, name := range slices.Sorted(maps.Keys(flags)) {
			if !strings.HasSuffix(name, "-listen") || name == "admin-listen" {
				continue
			}
			_, port, err := net.SplitHostPort(flags[name])
			n, _ := strconv.Atoi(port)
			if err != nil || !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == n }) {
				errs = append(errs, fmt.Errorf("container %s: --%s %q: not one of its containerPorts", c.Name, name, flags[name]))
			}
		}
	}
	return errs
}

// podsSelected returns the pod templates of the Deployments in namespace
// whose labels the selector selects.
func podsSelected(objs []*object, namespace string, selector map[string]string) []*corev1.PodTemplateSpec {
	var pods []*corev1.PodTemplateSpec
	for _, o := range objs {
		if d, ok := o.value.(*appsv1.Deployment); ok && o.meta.Namespace == namespace && selects(selector, d.Spec.Template.Labels) {
			pods = append(pods, &d.Spec.Template)
		}
	}
	return pods
}

// selects reports whether every selector label is among labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return len(selector) > 0
}

// checkService: the selector selects a Deployment's pods under deploy/, and
// every targetPort is one of their container ports.
func checkService(objs []*object, s *corev1.Service) []error {
	pods := podsSelected(objs, s.Namespace, s.Spec.Selector)
	if len(pods) == 0 {
		return []error{fmt.Errorf("Service %s: selector %v selects no Deployment's pods under deploy/", s.Name, s.Spec.Selector)}
	}
	var errs []error
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target == (intstr.IntOrString{}) {
			target = intstr.FromInt32(p.Port)
		}
		for _, pod := range pods {
			found := false
			for _, c := range pod.Spec.Containers {
				found = found || slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
					return target.Type == intstr.String && cp.Name == target.StrVal || target.Type == intstr.Int && cp.ContainerPort == target.IntVal
				})
			}
			if !found {
				errs = append(errs, fmt.Errorf("Service %s port %s: targetPort %s is no container port of the selected pods", s.Name, p.Name, target.String()))
			}
		}
	}
	return errs
}

// checkIstioCluster resolves an Istio cluster name,
// outbound|PORT||NAME.NAMESPACE.svc.cluster.local, to a Service port under
// deploy/. grpc: the port must be one Istio treats as gRPC (HTTP/2).
func checkIstioCluster(objs []*object, cluster, authority string, grpc bool) []error {
	parts := strings.Split(cluster, "|")
	name, ns, _ := strings.Cut(strings.TrimSuffix(parts[len(parts)-1], ".svc.cluster.local"), ".")
	port, err := strconv.Atoi(parts[min(1, len(parts)-1)])
	if len(parts) != 4 || parts[0] != "outbound" || err != nil || !strings.HasSuffix(parts[3], ".svc.cluster.local") || ns == "" {
		return []error{fmt.Errorf("cluster %q: want outbound|PORT||NAME.NAMESPACE.svc.cluster.local", cluster)}
	}
	s, ok := find[corev1.Service](objs, ns, name)
	if !ok {
		return []error{fmt.Errorf("cluster %q: no Service %s in namespace %s under deploy/", cluster, name, ns)}
	}
	var errs []error
	i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 {
		errs = append(errs, fmt.Errorf("cluster %q: Service %s has no port %d", cluster, name, port))
	} else if p := s.Spec.Ports[i]; grpc && p.Name != "grpc" && !strings.HasPrefix(p.Name, "grpc-") && (p.AppProtocol == nil || *p.AppProtocol != "grpc") {
		errs = append(errs, fmt.Errorf("cluster %q: Service port %s is not gRPC to Istio (name it grpc or set appProtocol: grpc)", cluster, p.Name))
	}
	if host, _, _ := strings.Cut(authority, ":"); authority != "" && host != parts[3] {
		errs = append(errs, fmt.Errorf("authority %q: want the cluster's host %s", authority, parts[3]))
	}
	return errs
}

// checkBackendRefs: each ext_proc backend is a Service port under deploy/,
// and a reference across namespaces has its ReferenceGrant.
func checkBackendRefs(objs []*object, o *object, eep *envoyExtensionPolicySpec) []error {
	var errs []error
	for _, e := range eep.ExtProc {
		for _, r := range e.BackendRefs {
			ns := cmp.Or(r.Namespace, o.meta.Namespace)
			s, ok := find[corev1.Service](objs, ns, r.Name)
			if !ok {
				errs = append(errs, fmt.Errorf("backendRef %s/%s: no such Service under deploy/", ns, r.Name))
				continue
			}
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == r.Port }) {
				errs = append(errs, fmt.Errorf("backendRef %s/%s: the Service has no port %d", ns, r.Name, r.Port))
			}
			if ns != o.meta.Namespace && !granted(objs, ns, o.meta.Namespace, r.Name) {
				errs = append(errs, fmt.Errorf("backendRef %s/%s: no ReferenceGrant in %s lets EnvoyExtensionPolicies in %s use it", ns, r.Name, ns, o.meta.Namespace))
			}
		}
	}
	return errs
}

func granted(objs []*object, ns, fromNS, service string) bool {
	for _, o := range objs {
		g, ok := o.value.(*referenceGrantSpec)
		if !ok || o.meta.Namespace != ns {
			continue
		}
		from := slices.ContainsFunc(g.From, func(f grantFrom) bool {
			return f.Group == "gateway.envoyproxy.io" && f.Kind == "EnvoyExtensionPolicy" && f.Namespace == fromNS
		})
		to := slices.ContainsFunc(g.To, func(t grantTo) bool {
			return t.Group == "" && t.Kind == "Service" && (t.Name == "" || t.Name == service)
		})
		if from && to {
			return true
		}
	}
	return false
}

// checkBootstrap: the admin interface on loopback; every cluster a route,
// the ext_proc filter or the wasm filter names is a static cluster; the
// ext_proc cluster speaks HTTP/2 (gRPC); typed_extension_protocol_options
// keys name their type.
func checkBootstrap(o *object, b *bootstrapv3.Bootstrap) []error {
	var errs []error
	if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "" && a != "127.0.0.1" && a != "::1" {
		errs = append(errs, fmt.Errorf("admin address %s: keep Envoy's admin on loopback", a))
	}
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
		opts := c.GetTypedExtensionProtocolOptions()
		for _, k := range slices.Sorted(maps.Keys(opts)) {
			if a := opts[k]; k != typeName(a) {
				errs = append(errs, fmt.Errorf("cluster %s: typed_extension_protocol_options key %q: want %q", c.GetName(), k, typeName(a)))
			}
		}
	}
	need := func(what, name string) *clusterv3.Cluster {
		c, ok := clusters[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s names cluster %q: no such static cluster", what, name))
		}
		return c
	}
	for _, m := range o.envoy {
		switch v := m.(type) {
		case *hcmv3.HttpConnectionManager:
			for _, vh := range v.GetRouteConfig().GetVirtualHosts() {
				for i, r := range vh.GetRoutes() {
					need(fmt.Sprintf("virtual host %s route %d", vh.GetName(), i), r.GetRoute().GetCluster())
				}
			}
		case *extprocv3.ExternalProcessor:
			if c := need("ext_proc", v.GetGrpcService().GetEnvoyGrpc().GetClusterName()); c != nil && !http2(c) {
				errs = append(errs, fmt.Errorf("cluster %s: gRPC needs explicit_http_config.http2_protocol_options", c.GetName()))
			}
		case *wasmfilterv3.Wasm:
			if c, err := envoyWasmConfig(v); err == nil {
				need("wasm collector_cluster", c.CollectorCluster)
			}
		}
	}
	return errs
}

func http2(c *clusterv3.Cluster) bool {
	a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	var o httpv3.HttpProtocolOptions
	return a != nil && a.UnmarshalTo(&o) == nil && o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// podLabels are the labels of the pods an object makes.
func podLabels(o *object) map[string]string {
	switch v := o.value.(type) {
	case *appsv1.Deployment:
		return v.Spec.Template.Labels
	case *batchv1.Job:
		return v.Spec.Template.Labels
	case *corev1.Pod:
		return v.Labels
	}
	return nil
}

// checkConfigMapRefs: every ConfigMap a container reads exists: in the set
// (a built kustomization holds the generated ConfigMap, its name hashed), or
// generated by a kustomization under deploy/ (a file names it before the
// hash); a key it reads is in the ConfigMap when the set holds it.
func checkConfigMapRefs(objs []*object, o *object, c corev1.Container) []error {
	var errs []error
	check := func(name, key string, optional *bool) {
		if cm, ok := find[corev1.ConfigMap](objs, o.meta.Namespace, name); ok {
			if _, has := cm.Data[key]; key != "" && !has && (optional == nil || !*optional) {
				errs = append(errs, fmt.Errorf("container %s: ConfigMap %s has no key %s", c.Name, name, key))
			}
			return
		}
		if !generated(objs, o.meta.Namespace, name) {
			errs = append(errs, fmt.Errorf("container %s: no ConfigMap %s in its namespace under deploy/, nor a configMapGenerator of it", c.Name, name))
		}
	}
	for _, e := range c.EnvFrom {
		if r := e.ConfigMapRef; r != nil {
			check(r.Name, "", r.Optional)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			r := e.ValueFrom.ConfigMapKeyRef
			check(r.Name, r.Key, r.Optional)
		}
	}
	return errs
}

// generated reports whether a kustomization under deploy/ generates the
// ConfigMap name in namespace.
func generated(objs []*object, namespace, name string) bool {
	for _, o := range objs {
		k, ok := o.value.(*kustypes.Kustomization)
		if !ok {
			continue
		}
		for _, g := range k.ConfigMapGenerator {
			if g.Name == name && cmp.Or(g.Namespace, k.Namespace) == namespace {
				return true
			}
		}
	}
	return false
}
