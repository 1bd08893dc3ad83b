package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Tekton (the CI gate of deploy/k8s/examples/ci-gate) and KServe kinds.
// Their CRD schemas (testdata/crds) validate every field; these types hold
// what the policy and reference checks read, and decode strictly what the
// schemas leave open.

// llmInferenceServiceSpec is what the policy reads of a KServe
// LLMInferenceService: its pod template's resources, whose names a schema
// cannot check (any key is allowed).
type llmInferenceServiceSpec struct {
	Template struct {
		Containers []struct {
			Name      string                      `json:"name"`
			Resources corev1.ResourceRequirements `json:"resources"`
		} `json:"containers"`
	} `json:"template"`
}

type tektonParamSpec struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Default json.RawMessage `json:"default"`
}

// tektonStep is a Task's step or stepTemplate (a container, as Tekton names
// its fields).
type tektonStep struct {
	Name             string                      `json:"name"`
	Image            string                      `json:"image"`
	Command          []string                    `json:"command"`
	Args             []string                    `json:"args"`
	Env              []corev1.EnvVar             `json:"env"`
	ComputeResources corev1.ResourceRequirements `json:"computeResources"`
	SecurityContext  *corev1.SecurityContext     `json:"securityContext"`
	VolumeMounts     []corev1.VolumeMount        `json:"volumeMounts"`
}

type tektonWorkspace struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type tektonTaskSpec struct {
	Params     []tektonParamSpec `json:"params"`
	Workspaces []tektonWorkspace `json:"workspaces"`
	// Volumes is open in the CRD (x-kubernetes-preserve-unknown-fields);
	// Tekton decodes it into []corev1.Volume, and so does strictOpen.
	Volumes      json.RawMessage `json:"volumes"`
	StepTemplate *tektonStep     `json:"stepTemplate"`
	Steps        []tektonStep    `json:"steps"`
	volumes      []corev1.Volume
}

func (t *tektonTaskSpec) strictOpen() error {
	if len(t.Volumes) == 0 {
		return nil
	}
	if err := strictJSON(t.Volumes, &t.volumes); err != nil {
		return fmt.Errorf("spec.volumes: %w", err)
	}
	return nil
}

// tektonParam is a parameter's value: a string or an array of strings.
type tektonParam struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// strings returns the value as a list (one element for a string).
func (p tektonParam) strings() []string {
	var s string
	if json.Unmarshal(p.Value, &s) == nil {
		return []string{s}
	}
	var l []string
	_ = json.Unmarshal(p.Value, &l)
	return l
}

type tektonPipelineTask struct {
	Name    string `json:"name"`
	TaskRef *struct {
		Name string `json:"name"`
	} `json:"taskRef"`
	Params []tektonParam `json:"params"`
	Matrix *struct {
		Params []tektonParam `json:"params"`
	} `json:"matrix"`
	Workspaces []struct {
		Name      string `json:"name"`
		Workspace string `json:"workspace"`
	} `json:"workspaces"`
	RunAfter []string `json:"runAfter"`
}

type tektonPipelineSpec struct {
	Params     []tektonParamSpec `json:"params"`
	Workspaces []struct {
		Name string `json:"name"`
	} `json:"workspaces"`
	Tasks   []tektonPipelineTask `json:"tasks"`
	Finally []tektonPipelineTask `json:"finally"`
}

type tektonPipelineRunSpec struct {
	PipelineRef *struct {
		Name string `json:"name"`
	} `json:"pipelineRef"`
	Params     []tektonParam `json:"params"`
	Workspaces []struct {
		Name                  string                                    `json:"name"`
		PersistentVolumeClaim *corev1.PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim"`
	} `json:"workspaces"`
	TaskRunTemplate struct {
		ServiceAccountName string `json:"serviceAccountName"`
		PodTemplate        struct {
			// SecurityContext is open in the CRD; Tekton decodes it into a
			// corev1.PodSecurityContext, and so does strictOpen.
			SecurityContext json.RawMessage `json:"securityContext"`
		} `json:"podTemplate"`
	} `json:"taskRunTemplate"`
	securityContext *corev1.PodSecurityContext
}

func (r *tektonPipelineRunSpec) strictOpen() error {
	raw := r.TaskRunTemplate.PodTemplate.SecurityContext
	if len(raw) == 0 {
		return nil
	}
	r.securityContext = new(corev1.PodSecurityContext)
	if err := strictJSON(raw, r.securityContext); err != nil {
		return fmt.Errorf("spec.taskRunTemplate.podTemplate.securityContext: %w", err)
	}
	return nil
}

// tektonRef matches Tekton's $(params.NAME), $(params.NAME[*]) and
// $(workspaces.NAME.path) substitutions.
var tektonRef = regexp.MustCompile(`\$\((params|workspaces)\.([A-Za-z0-9_-]+)(\[\*\]|\.path)?\)`)

// checkTask: every substitution names a declared parameter or workspace;
// every step, merged with the stepTemplate as Tekton merges them, carries
// no credential, names known resources and mounts declared volumes; steps
// running Reprise are non-root, locked down, sized, on Reprise's image.
func checkTask(o *object, t *tektonTaskSpec) []error {
	var errs []error
	params := map[string]tektonParamSpec{}
	for _, p := range t.Params {
		params[p.Name] = p
	}
	workspaces := map[string]bool{}
	for _, w := range t.Workspaces {
		workspaces[w.Name] = true
	}
	volumes := map[string]bool{}
	for _, v := range t.volumes {
		volumes[v.Name] = true
	}
	for _, s := range t.Steps {
		s = mergeStep(t.StepTemplate, s)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("step %s: "+format, append([]any{s.Name}, args...)...))
		}
		texts := slices.Concat([]string{s.Image}, s.Command, s.Args)
		for _, e := range s.Env {
			texts = append(texts, e.Value)
		}
		for _, txt := range texts {
			for _, m := range tektonRef.FindAllStringSubmatch(txt, -1) {
				if m[1] == "params" && params[m[2]].Name == "" || m[1] == "workspaces" && !workspaces[m[2]] {
					fail("%q: no %s %s declared", txt, strings.TrimSuffix(m[1], "s"), m[2])
				}
			}
		}
		for _, m := range s.VolumeMounts {
			if !volumes[m.Name] {
				fail("volumeMount %s: no such volume in spec.volumes", m.Name)
			}
		}
		errs = append(errs, checkResourceNames(s.Name, s.ComputeResources)...)
		errs = append(errs, checkEnvAndFlags(s.Name, s.Env, slices.Concat(s.Command, s.Args))...)
		c := corev1.Container{Name: s.Name, Command: s.Command, Args: s.Args}
		if !isReprise(c) {
			continue
		}
		sc := s.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			fail("runAsNonRoot must be true")
		}
		if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			fail("seccompProfile.type must be RuntimeDefault")
		}
		errs = append(errs, checkContainerSecurity(s.Name, sc)...)
		errs = append(errs, checkSized(s.Name, s.ComputeResources)...)
		image := s.Image
		if m := tektonRef.FindStringSubmatch(image); m != nil && m[0] == image && m[1] == "params" {
			var def string
			if err := json.Unmarshal(params[m[2]].Default, &def); err != nil {
				fail("image %s: the parameter has no string default", image)
				continue
			}
			image = def
		}
		if err := checkImage(o.source(), image); err != nil {
			fail("%v", err)
		}
		if commandName(c) == "replay" {
			errs = append(errs, checkShardStep(s)...)
		}
	}
	return errs
}

// mergeStep applies a stepTemplate to a step as Tekton does for these
// fields: the step's value wins, field by field in securityContext; env
// and volumeMounts merged by name.
func mergeStep(tmpl *tektonStep, s tektonStep) tektonStep {
	if tmpl == nil {
		return s
	}
	out := s
	if len(out.ComputeResources.Requests)+len(out.ComputeResources.Limits) == 0 {
		out.ComputeResources = tmpl.ComputeResources
	}
	if tmpl.SecurityContext != nil {
		sc := *tmpl.SecurityContext
		if s.SecurityContext != nil {
			b, _ := json.Marshal(s.SecurityContext)
			_ = json.Unmarshal(b, &sc) // the step's fields over the template's
		}
		out.SecurityContext = &sc
	}
	for _, e := range tmpl.Env {
		if !slices.ContainsFunc(out.Env, func(x corev1.EnvVar) bool { return x.Name == e.Name }) {
			out.Env = append(out.Env, e)
		}
	}
	for _, m := range tmpl.VolumeMounts {
		if !slices.ContainsFunc(out.VolumeMounts, func(x corev1.VolumeMount) bool { return x.Name == m.Name }) {
			out.VolumeMounts = append(out.VolumeMounts, m)
		}
	}
	return out
}

// checkShardStep: a replay step given --shard I/N writes a directory of
// its own shard and starts at a barrier shared by the run's shards.
func checkShardStep(s tektonStep) []error {
	rc, err := parseReplay(corev1.Container{Name: s.Name, Command: s.Command, Args: s.Args})
	if err != nil || rc.sub != "run" {
		return nil
	}
	shard, ok := rc.flags["shard"]
	if !ok {
		return nil
	}
	index, _, _ := strings.Cut(shard, "/")
	var errs []error
	if out := rc.flags["output-dir"]; !strings.Contains(out, index) {
		errs = append(errs, fmt.Errorf("step %s: --output-dir %q: each shard needs its own, with %s", s.Name, out, index))
	}
	if b, ok := rc.flags["start-barrier"]; !ok || strings.Contains(b, index) {
		errs = append(errs, fmt.Errorf("step %s: --start-barrier %q: want one directory shared by the run's shards", s.Name, b))
	}
	return errs
}

// checkPipeline: a task fanned out over shard indices (a matrix over
// `shard`) covers 0..N-1 once each, N being the `shards` it passes; every
// $(params.X) names a Pipeline parameter.
func checkPipeline(p *tektonPipelineSpec) []error {
	var errs []error
	declared := map[string]bool{}
	for _, ps := range p.Params {
		declared[ps.Name] = true
	}
	for _, t := range slices.Concat(p.Tasks, p.Finally) {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("task %s: "+format, append([]any{t.Name}, args...)...))
		}
		var all []tektonParam
		if t.Matrix != nil {
			all = append(all, t.Matrix.Params...)
		}
		for _, prm := range append(all, t.Params...) {
			for _, v := range prm.strings() {
				for _, m := range tektonRef.FindAllStringSubmatch(v, -1) {
					if m[1] == "params" && !declared[m[2]] {
						fail("param %s: %q names no Pipeline parameter", prm.Name, v)
					}
				}
			}
		}
		if t.Matrix == nil {
			continue
		}
		i := slices.IndexFunc(t.Matrix.Params, func(x tektonParam) bool { return x.Name == "shard" })
		if i < 0 {
			continue
		}
		shards := t.Matrix.Params[i].strings()
		j := slices.IndexFunc(t.Params, func(x tektonParam) bool { return x.Name == "shards" })
		if j < 0 {
			fail("a matrix over shard without the shards parameter (N)")
			continue
		}
		n, err := strconv.Atoi(strings.Join(t.Params[j].strings(), ""))
		if err != nil || n != len(shards) {
			fail("shards %s, but the matrix runs %d shards %v", t.Params[j].Value, len(shards), shards)
			continue
		}
		for k, v := range shards {
			if v != strconv.Itoa(k) {
				fail("matrix shard values %v: want 0 to %d, once each", shards, n-1)
				break
			}
		}
	}
	return errs
}

// checkPipelineRun: the pods run non-root with seccomp RuntimeDefault; the
// image parameter, if any, is the placeholder.
func checkPipelineRun(o *object, r *tektonPipelineRunSpec) []error {
	var errs []error
	sc := r.securityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		errs = append(errs, errors.New("taskRunTemplate.podTemplate.securityContext.runAsNonRoot must be true"))
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errs = append(errs, errors.New("taskRunTemplate.podTemplate.securityContext.seccompProfile.type must be RuntimeDefault"))
	}
	for _, p := range r.Params {
		if p.Name == "image" {
			if err := checkImage(o.source(), strings.Join(p.strings(), "")); err != nil {
				errs = append(errs, fmt.Errorf("param image: %w", err))
			}
		}
	}
	return errs
}

// taskSpec finds a Task of the set.
func taskSpec(objs []*object, namespace, name string) *tektonTaskSpec {
	t, _ := find[tektonTaskSpec](objs, namespace, name)
	return t
}

// checkPipelineReferences: each task's Task exists; the parameters it
// passes are the Task's, and every Task parameter without a default is
// passed; the workspaces bound are the Task's and the Pipeline's, and every
// Task workspace is bound; runAfter names tasks of the Pipeline.
func checkPipelineReferences(objs []*object, o *object, p *tektonPipelineSpec) []error {
	var errs []error
	pipelineWS := map[string]bool{}
	for _, w := range p.Workspaces {
		pipelineWS[w.Name] = true
	}
	names := map[string]bool{}
	for _, t := range slices.Concat(p.Tasks, p.Finally) {
		names[t.Name] = true
	}
	for _, t := range slices.Concat(p.Tasks, p.Finally) {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("task %s: "+format, append([]any{t.Name}, args...)...))
		}
		for _, a := range t.RunAfter {
			if !names[a] {
				fail("runAfter %s: no such task", a)
			}
		}
		if t.TaskRef == nil {
			fail("no taskRef")
			continue
		}
		task := taskSpec(objs, o.meta.Namespace, t.TaskRef.Name)
		if task == nil {
			fail("taskRef %s: no Task %s in its namespace under deploy/", t.TaskRef.Name, t.TaskRef.Name)
			continue
		}
		passed := map[string]bool{}
		var all []tektonParam
		if t.Matrix != nil {
			all = t.Matrix.Params
		}
		for _, prm := range append(slices.Clone(all), t.Params...) {
			passed[prm.Name] = true
			if !slices.ContainsFunc(task.Params, func(s tektonParamSpec) bool { return s.Name == prm.Name }) {
				fail("param %s: Task %s has no such parameter", prm.Name, t.TaskRef.Name)
			}
		}
		for _, s := range task.Params {
			if len(s.Default) == 0 && !passed[s.Name] {
				fail("Task %s's parameter %s has no default and is not passed", t.TaskRef.Name, s.Name)
			}
		}
		bound := map[string]bool{}
		for _, w := range t.Workspaces {
			bound[w.Name] = true
			if !pipelineWS[w.Workspace] {
				fail("workspace %s: the Pipeline has no workspace %s", w.Name, w.Workspace)
			}
			if !slices.ContainsFunc(task.Workspaces, func(x tektonWorkspace) bool { return x.Name == w.Name }) {
				fail("workspace %s: Task %s declares no such workspace", w.Name, t.TaskRef.Name)
			}
		}
		for _, w := range task.Workspaces {
			if !bound[w.Name] {
				fail("Task %s's workspace %s is not bound", t.TaskRef.Name, w.Name)
			}
		}
	}
	return errs
}

// checkPipelineRunReferences: the Pipeline exists; the parameters passed
// are its own, and every parameter without a default is passed; every
// workspace is bound, claims and the service account exist.
func checkPipelineRunReferences(objs []*object, o *object, r *tektonPipelineRunSpec) []error {
	var errs []error
	if r.PipelineRef == nil {
		return []error{errors.New("no pipelineRef")}
	}
	p, ok := find[tektonPipelineSpec](objs, o.meta.Namespace, r.PipelineRef.Name)
	if !ok {
		return []error{fmt.Errorf("pipelineRef %s: no Pipeline %s in its namespace under deploy/", r.PipelineRef.Name, r.PipelineRef.Name)}
	}
	passed := map[string]bool{}
	for _, prm := range r.Params {
		passed[prm.Name] = true
		if !slices.ContainsFunc(p.Params, func(s tektonParamSpec) bool { return s.Name == prm.Name }) {
			errs = append(errs, fmt.Errorf("param %s: Pipeline %s has no such parameter", prm.Name, r.PipelineRef.Name))
		}
	}
	for _, s := range p.Params {
		if len(s.Default) == 0 && !passed[s.Name] {
			errs = append(errs, fmt.Errorf("Pipeline %s's parameter %s has no default and is not passed", r.PipelineRef.Name, s.Name))
		}
	}
	bound := map[string]bool{}
	for _, w := range r.Workspaces {
		bound[w.Name] = true
		if c := w.PersistentVolumeClaim; c != nil {
			if _, ok := find[corev1.PersistentVolumeClaim](objs, o.meta.Namespace, c.ClaimName); !ok {
				errs = append(errs, fmt.Errorf("workspace %s: no PersistentVolumeClaim %s in its namespace under deploy/", w.Name, c.ClaimName))
			}
		}
	}
	for _, w := range p.Workspaces {
		if !bound[w.Name] {
			errs = append(errs, fmt.Errorf("Pipeline %s's workspace %s is not bound", r.PipelineRef.Name, w.Name))
		}
	}
	if sa := r.TaskRunTemplate.ServiceAccountName; sa != "" {
		if _, ok := find[corev1.ServiceAccount](objs, o.meta.Namespace, sa); !ok {
			errs = append(errs, fmt.Errorf("serviceAccountName %s: no ServiceAccount %s in its namespace under deploy/", sa, sa))
		}
	}
	return errs
}
