package deploy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The replay Jobs (deploy/k8s/replay, issue 13): a run writes under a
// directory of its own, named after its Job; an Indexed Job's shards agree
// on their number with Kubernetes (--shard auto/N, N = completions =
// parallelism: every shard runs at once, as the start barrier needs), each
// writes its own directory, and all share one barrier; the merge Job reads
// the directory the shards wrote.

// jobNameLabels are the labels Kubernetes puts on a Job's pods with the
// Job's name: batch.kubernetes.io/job-name since 1.27, job-name before.
var jobNameLabels = []string{
	"metadata.labels['batch.kubernetes.io/job-name']",
	"metadata.labels['job-name']",
}

// jobCompletionIndex is the variable Kubernetes sets in every container of
// an Indexed Job's pods.
const jobCompletionIndex = "JOB_COMPLETION_INDEX"

// varRef matches a $(VAR) reference, which the kubelet expands in command
// and args from the container's environment, and leaves as is when VAR is
// not defined: a directory literally named "$(JOB_NAME)".
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// replayCommand is a replay container's command line: the subcommand, its
// --name=value and bare (boolean) flags, and its positional arguments.
type replayCommand struct {
	sub        string
	flags      map[string]string
	positional []string
}

// parseReplay reads a replay container's arguments. Flags are written
// --name=value or bare (booleans) in these manifests: with no space-separated
// values, a positional argument after a boolean flag cannot be mistaken for
// the flag's value. TestReplayFlags checks the names and the booleans
// against the binary's --help.
func parseReplay(c corev1.Container) (replayCommand, error) {
	argv := slices.Concat(c.Command[min(1, len(c.Command)):], c.Args)
	rc := replayCommand{flags: map[string]string{}}
	if len(argv) == 0 || strings.HasPrefix(argv[0], "-") {
		return rc, fmt.Errorf("container %s: replay without a subcommand", c.Name)
	}
	rc.sub = argv[0]
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "-") {
			rc.positional = append(rc.positional, a)
			continue
		}
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
		}
		if _, dup := rc.flags[name]; dup {
			return rc, fmt.Errorf("container %s: --%s given twice", c.Name, name)
		}
		rc.flags[name] = value
	}
	return rc, nil
}

// checkJob: the policy of one Job that runs replay.
func checkJob(j *batchv1.Job) []error {
	var errs []error
	ps := &j.Spec.Template.Spec
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
	for _, c := range ps.Containers {
		if commandName(c) != "replay" {
			continue
		}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
		}
		if ps.RestartPolicy != corev1.RestartPolicyNever {
			fail("restartPolicy %q: want Never (a replay restarted in place is a second measurement mixed into the first)", ps.RestartPolicy)
		}
		if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
			fail("backoffLimit must be 0: a replay retried is another measurement, and a retried shard would start after the others")
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		for _, a := range slices.Concat(c.Command, c.Args) {
			for _, m := range varRef.FindAllStringSubmatch(a, -1) {
				_, defined := env[m[1]]
				if !defined && !(indexed && m[1] == jobCompletionIndex) {
					fail("%q refers to $(%s), which the container does not define (the kubelet would leave it as is)", a, m[1])
				}
			}
		}
		if e, ok := env["JOB_NAME"]; ok && (e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || !slices.Contains(jobNameLabels, e.ValueFrom.FieldRef.FieldPath)) {
			fail("env JOB_NAME: want valueFrom.fieldRef.fieldPath %s (the Job's name, from the downward API)", jobNameLabels[0])
		}
		rc, err := parseReplay(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mounts := pvcMounts(ps, c)
		switch rc.sub {
		case "run":
			out := rc.flags["output-dir"]
			if !strings.Contains(out, "$(JOB_NAME)") {
				fail("--output-dir %q: want a directory of the run's own, under $(JOB_NAME)", out)
			}
			for _, f := range []string{"output-dir", "start-barrier"} {
				if v, ok := rc.flags[f]; ok && !under(v, mounts) {
					fail("--%s %q is not on a PersistentVolumeClaim's mount (%v)", f, v, mounts)
				}
			}
			errs = append(errs, checkShards(j, c, rc, indexed)...)
		case "merge":
			if len(rc.positional) != 1 {
				fail("replay merge takes one directory, got %q", rc.positional)
			}
			for _, d := range append(slices.Clone(rc.positional), rc.flags["output-dir"]) {
				if !under(d, mounts) {
					fail("%q is not on a PersistentVolumeClaim's mount (%v)", d, mounts)
				}
			}
		}
	}
	return errs
}

// checkShards: an Indexed Job splits the run into completions shards, all
// running at once, each told N by --shard auto/N; a Job that is not Indexed
// has no JOB_COMPLETION_INDEX for --shard auto to read.
func checkShards(j *batchv1.Job, c corev1.Container, rc replayCommand, indexed bool) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
	}
	shard, sharded := rc.flags["shard"]
	if !indexed {
		if strings.HasPrefix(shard, "auto/") {
			fail("--shard %s reads JOB_COMPLETION_INDEX, which only an Indexed Job sets (completionMode: Indexed)", shard)
		}
		if n := ptrOr(j.Spec.Completions, 1); n != 1 || ptrOr(j.Spec.Parallelism, 1) != 1 {
			fail("completions %d, parallelism %d: a replay Job that is not Indexed runs one pod", n, ptrOr(j.Spec.Parallelism, 1))
		}
		return errs
	}
	n := ptrOr(j.Spec.Completions, 0)
	if n < 1 {
		fail("completionMode Indexed without completions: the number of shards")
	}
	if p := ptrOr(j.Spec.Parallelism, 1); p != n {
		fail("parallelism %d, completions %d: every shard must run at once (the start barrier waits for all %d)", p, n, n)
	}
	want := fmt.Sprintf("auto/%d", n)
	if !sharded || (shard != want && shard != fmt.Sprintf("$(%s)/%d", jobCompletionIndex, n)) {
		fail("--shard %q: want %s, N being completions", shard, want)
	}
	if out := rc.flags["output-dir"]; !strings.Contains(out, "$("+jobCompletionIndex+")") {
		fail("--output-dir %q: each shard needs its own, with $(%s)", out, jobCompletionIndex)
	}
	b, ok := rc.flags["start-barrier"]
	switch {
	case !ok:
		fail("no --start-barrier: the shards would not start together")
	case strings.Contains(b, "$("+jobCompletionIndex+")") || !strings.Contains(b, "$(JOB_NAME)"):
		fail("--start-barrier %q: want one directory for the run's shards, under $(JOB_NAME) and the same for every shard", b)
	}
	return errs
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// pvcMounts are the mount paths of the container's PersistentVolumeClaim
// volumes, read-write.
func pvcMounts(ps *corev1.PodSpec, c corev1.Container) []string {
	var out []string
	for _, m := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && !m.ReadOnly && !v.PersistentVolumeClaim.ReadOnly {
				out = append(out, m.MountPath)
			}
		}
	}
	return out
}

// under reports whether the path p lies under one of the mount paths.
func under(p string, mounts []string) bool {
	return slices.ContainsFunc(mounts, func(m string) bool {
		return p == m || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/")
	})
}

// checkJobReferences: a merge Job reads the directory an Indexed replay
// Job of the set writes its shards under, on the same claim. Resolved as the
// kubelet would, from the container's environment (literal values, the
// Job's name label, ConfigMap keys); a value the set cannot resolve (a
// ConfigMap generated by kustomize, in the files before a build) is checked
// on the built manifests instead.
func checkJobReferences(objs []*object, o *object, j *batchv1.Job) []error {
	var errs []error
	for _, c := range j.Spec.Template.Spec.Containers {
		rc, err := parseReplay(c)
		if commandName(c) != "replay" || err != nil || rc.sub != "merge" || len(rc.positional) != 1 {
			continue
		}
		in, ok := expand(rc.positional[0], containerEnv(objs, o, j, c))
		if !ok {
			continue
		}
		var roots []string
		for _, s := range objs {
			sj, ok := s.value.(*batchv1.Job)
			if !ok || s.meta.Namespace != o.meta.Namespace || sj.Spec.CompletionMode == nil || *sj.Spec.CompletionMode != batchv1.IndexedCompletion {
				continue
			}
			for _, sc := range sj.Spec.Template.Spec.Containers {
				src, err := parseReplay(sc)
				if commandName(sc) != "replay" || err != nil || src.sub != "run" {
					continue
				}
				env := containerEnv(objs, s, sj, sc)
				env[jobCompletionIndex] = "0"
				out, ok := expand(src.flags["output-dir"], env)
				if !ok {
					continue
				}
				root := path.Dir(out)
				roots = append(roots, root)
				if root == in && claimAt(&sj.Spec.Template.Spec, sc, root) != claimAt(&j.Spec.Template.Spec, c, in) {
					errs = append(errs, fmt.Errorf("container %s: merges %s on claim %q, the shards of Job %s write it on claim %q",
						c.Name, in, claimAt(&j.Spec.Template.Spec, c, in), sj.Name, claimAt(&sj.Spec.Template.Spec, sc, root)))
				}
			}
		}
		if !slices.Contains(roots, in) {
			errs = append(errs, fmt.Errorf("container %s: merges %s, where no Indexed replay Job of the set writes its shards (they write under %v)", c.Name, in, roots))
		}
	}
	return errs
}

// containerEnv resolves the container's environment as far as the set
// allows: literal values, the Job's name and the namespace from the
// downward API, and keys of ConfigMaps the set holds.
func containerEnv(objs []*object, o *object, j *batchv1.Job, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, f := range c.EnvFrom {
		if r := f.ConfigMapRef; r != nil {
			if cm, ok := find[corev1.ConfigMap](objs, o.meta.Namespace, r.Name); ok {
				for k, v := range cm.Data {
					env[f.Prefix+k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			switch p := e.ValueFrom.FieldRef.FieldPath; {
			case slices.Contains(jobNameLabels, p):
				env[e.Name] = j.Name
			case p == "metadata.namespace":
				env[e.Name] = o.meta.Namespace
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			if cm, ok := find[corev1.ConfigMap](objs, o.meta.Namespace, r.Name); ok {
				if v, ok := cm.Data[r.Key]; ok {
					env[e.Name] = v
				}
			}
		}
	}
	return env
}

// expand replaces every $(VAR) in s from env; ok is false when one is not
// resolved.
func expand(s string, env map[string]string) (string, bool) {
	ok := true
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		v, found := env[varRef.FindStringSubmatch(m)[1]]
		ok = ok && found
		return v
	})
	return out, ok
}

// claimAt is the claim mounted where the path p lies.
func claimAt(ps *corev1.PodSpec, c corev1.Container, p string) string {
	best, claim := "", ""
	for _, m := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && under(p, []string{m.MountPath}) && len(m.MountPath) > len(best) {
				best, claim = m.MountPath, v.PersistentVolumeClaim.ClaimName
			}
		}
	}
	return claim
}

// dnsLabel is what a Job's name (and so a run's name) must be: the Job
// controller puts it in a pod label, at most 63 characters.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkRunName: a ConfigMap of run settings names the run with a valid Job
// name (components/named makes REPRISE_NAME the Jobs' names).
func checkRunName(cm *corev1.ConfigMap) []error {
	name, ok := cm.Data["REPRISE_NAME"]
	if !ok {
		return nil
	}
	if !dnsLabel.MatchString(name) || len(name) > 63-len("-merge") {
		return []error{fmt.Errorf("REPRISE_NAME %q names the run's Jobs (NAME, NAME-merge): lowercase letters, digits and '-', at most %d characters",
			name, 63-len("-merge"))}
	}
	return nil
}
