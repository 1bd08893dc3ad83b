package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// What `kubectl apply -k DIR` applies is not any file but kustomize's
// build of DIR: patches applied, generated ConfigMaps hashed, names replaced.
// Every Kustomization under deploy/ is built here with kustomize's own Go API
// (krusty, as kubectl embeds it; default options, so a kustomization may
// load files only from its own tree, as kubectl's) and the built objects go
// through the same strict decoding, policy and reference checks as the
// files, together with the files' objects (a built Job's claim is in
// deploy/k8s/replay/setup).

// fsRoot is where deploy/ is copied in the in-memory filesystems the builds
// run on.
const fsRoot = "/deploy"

// memFS copies deploy/ (without testdata) into memory, so that a test can
// edit a file and build without touching the tree.
func memFS(t testing.TB) filesys.FileSystem {
	t.Helper()
	m := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if e.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return m.WriteFile(path.Join(fsRoot, filepath.ToSlash(p)), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// build runs kustomize on dir (a directory under deploy/) and returns the
// built objects as documents named after dir and the object.
func build(fsys filesys.FileSystem, dir string) ([]document, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fsys, path.Join(fsRoot, dir))
	if err != nil {
		return nil, fmt.Errorf("deploy/%s: kustomize build: %w", dir, err)
	}
	var docs []document
	for _, r := range rm.Resources() {
		j, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("deploy/%s: %w", dir, err)
		}
		obj := strings.TrimSpace(fmt.Sprintf("%s %s/%s", r.GetKind(), r.GetNamespace(), r.GetName()))
		docs = append(docs, document{file: obj, count: 1, json: j, build: dir})
	}
	return docs, nil
}

// kustomizationDirs are the directories whose kustomization.yaml is a
// Kustomization (a Component is built as part of one), with their
// decoded kustomizations (directory → kustomization, for every kind).
func kustomizationDirs(objs []*object) ([]string, map[string]*kustypes.Kustomization) {
	var dirs []string
	all := map[string]*kustypes.Kustomization{}
	for _, o := range objs {
		if k, ok := o.value.(*kustypes.Kustomization); ok {
			all[path.Dir(o.file)] = k
			if k.Kind == kustypes.KustomizationKind {
				dirs = append(dirs, path.Dir(o.file))
			}
		}
	}
	slices.Sort(dirs)
	return dirs, all
}

// dependsOn reports whether building dir reads the kustomization in dep.
func dependsOn(all map[string]*kustypes.Kustomization, dir, dep string) bool {
	seen := map[string]bool{}
	var walk func(d string) bool
	walk = func(d string) bool {
		if d == dep {
			return true
		}
		if seen[d] {
			return false
		}
		seen[d] = true
		k := all[d]
		if k == nil {
			return false
		}
		for _, r := range slices.Concat(k.Resources, k.Components) {
			if walk(path.Join(d, r)) {
				return true
			}
		}
		return false
	}
	return walk(dir)
}

// validateBuilt decodes the built documents and checks them with the
// files' objects.
func validateBuilt(built []document, files []*object) ([]*object, error) {
	var objs []*object
	var errs []error
	for _, d := range built {
		o, err := decode(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return objs, checkSet(slices.Concat(objs, files))
}

// buildAndCheck builds dir on fsys and validates it.
func buildAndCheck(fsys filesys.FileSystem, dir string, files []*object) ([]*object, error) {
	built, err := build(fsys, dir)
	if err != nil {
		return nil, err
	}
	return validateBuilt(built, files)
}

// TestBuilt builds every Kustomization under deploy/ and validates what it
// builds, as strictly as the files.
func TestBuilt(t *testing.T) {
	_, files := mustLoad(t)
	dirs, _ := kustomizationDirs(files)
	fsys := memFS(t)
	for _, dir := range dirs {
		objs, err := buildAndCheck(fsys, dir, files)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.document.file)
		}
		t.Logf("deploy/%s: %s", dir, strings.Join(kinds, ", "))
	}
}

// built returns the objects of the built kustomization of that kind.
func builtOf[T any](objs []*object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// mustBuild builds and validates dir, failing the test on any problem.
func mustBuild(t *testing.T, fsys filesys.FileSystem, dir string, files []*object) []*object {
	t.Helper()
	objs, err := buildAndCheck(fsys, dir, files)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return objs
}

// runSettings is the built ConfigMap of run settings.
func runSettings(t *testing.T, objs []*object) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range builtOf[corev1.ConfigMap](objs) {
		if strings.HasPrefix(cm.Name, "reprise-replay-") {
			return cm
		}
	}
	t.Fatal("no ConfigMap reprise-replay-HASH")
	return nil
}

// TestBuiltRuns checks what each run kustomization applies: the sharded
// ones an Indexed Job of 4 shards named after the run and a suspended
// merge Job named after it; the one-pod one a single Job. The general
// checks (TestBuilt) hold the details to account; this test makes sure
// they had something to check.
func TestBuiltRuns(t *testing.T) {
	_, files := mustLoad(t)
	fsys := memFS(t)
	sharded := []string{"k8s/replay/overlays/sharded", "k8s/examples/kserve-llmisvc", "k8s/examples/llm-d", "k8s/examples/openshift"}
	for _, dir := range append(slices.Clone(sharded), "k8s/replay/overlays/job") {
		t.Run(dir, func(t *testing.T) {
			objs := mustBuild(t, fsys, dir, files)
			run := runSettings(t, objs).Data["REPRISE_NAME"]
			jobs := builtOf[batchv1.Job](objs)
			if !slices.Contains(sharded, dir) {
				if len(jobs) != 1 || jobs[0].Name != run || jobs[0].Spec.CompletionMode != nil {
					t.Fatalf("want one Job %s, not Indexed; got %v", run, jobNames(jobs))
				}
				return
			}
			if len(jobs) != 2 {
				t.Fatalf("want the shards' Job and the merge Job, got %v", jobNames(jobs))
			}
			shards, merge := jobs[0], jobs[1]
			if shards.Name != run || merge.Name != run+"-merge" {
				t.Errorf("Jobs %v: want %s and %s-merge (REPRISE_NAME %s)", jobNames(jobs), run, run, run)
			}
			if shards.Spec.CompletionMode == nil || *shards.Spec.CompletionMode != batchv1.IndexedCompletion ||
				ptrOr(shards.Spec.Completions, 0) != 4 || ptrOr(shards.Spec.Parallelism, 0) != 4 {
				t.Errorf("Job %s: want Indexed, completions = parallelism = 4; got %v, %v, %v", shards.Name,
					shards.Spec.CompletionMode, shards.Spec.Completions, shards.Spec.Parallelism)
			}
			if rc, err := parseReplay(shards.Spec.Template.Spec.Containers[0]); err != nil || rc.flags["shard"] != "auto/4" {
				t.Errorf("Job %s: --shard %q, want auto/4 (%v)", shards.Name, rc.flags["shard"], err)
			}
			if merge.Spec.Suspend == nil || !*merge.Spec.Suspend {
				t.Errorf("Job %s: want suspend: true (resumed once the shards are done)", merge.Name)
			}
		})
	}
}

func jobNames(jobs []*batchv1.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Name)
	}
	return out
}

// TestBuiltOpenShift: the OpenShift variants ask for no UID, GID or
// fsGroup anywhere (restricted-v2 assigns them from the namespace's range
// and refuses pods that ask for others); the rest of the restricted
// standard holds (TestBuilt's policy).
func TestBuiltOpenShift(t *testing.T) {
	docs, files := mustLoad(t)
	fsys := memFS(t)
	var trees []document
	for _, dir := range []string{"k8s/examples/openshift", "k8s/examples/openshift/proxy"} {
		built, err := build(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := validateBuilt(built, files); err != nil {
			t.Fatalf("%v", err)
		}
		trees = append(trees, built...)
	}
	for _, d := range docs {
		if strings.HasPrefix(d.file, "k8s/examples/openshift/") && !strings.HasSuffix(d.file, "kustomization.yaml") {
			trees = append(trees, d)
		}
	}
	pods := 0
	for _, d := range trees {
		tree, err := jsonTree(d.json)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range keyPaths(tree, nil) {
			switch k := p[len(p)-1]; k {
			case "runAsUser", "runAsGroup", "fsGroup":
				t.Errorf("%s: %s: OpenShift assigns it", d.name(), strings.Join(p, "."))
			case "containers":
				pods++
			}
		}
	}
	if pods < 4 {
		t.Errorf("%d pod specs checked, want the shards, the merge, the proxy and the data pod", pods)
	}
}

// edit replaces old with new in the file at p (under deploy/) of fsys; the
// text must be there.
func edit(t *testing.T, fsys filesys.FileSystem, p, old, new string) {
	t.Helper()
	b, err := fsys.ReadFile(path.Join(fsRoot, p))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("deploy/%s does not hold %q", p, old)
	}
	if err := fsys.WriteFile(path.Join(fsRoot, p), []byte(strings.Replace(string(b), old, new, 1))); err != nil {
		t.Fatal(err)
	}
}

const (
	runFile     = "k8s/replay/run/kustomization.yaml"
	shardedFile = "k8s/replay/components/sharded/kustomization.yaml"
	mergeFile   = "k8s/replay/components/sharded/merge-job.yaml"
	shardedDir  = "k8s/replay/overlays/sharded"
)

// TestKnobs makes the edits docs/kubernetes.md tells users to make and
// checks that they do what it says: N in one place, the run's name, the
// image.
func TestKnobs(t *testing.T) {
	_, files := mustLoad(t)
	t.Run("shards", func(t *testing.T) {
		fsys := memFS(t)
		edit(t, fsys, shardedFile, "completions: 4", "completions: 8")
		objs := mustBuild(t, fsys, shardedDir, files)
		j := builtOf[batchv1.Job](objs)[0]
		rc, _ := parseReplay(j.Spec.Template.Spec.Containers[0])
		if ptrOr(j.Spec.Parallelism, 0) != 8 || rc.flags["shard"] != "auto/8" {
			t.Errorf("completions 8: parallelism %v, --shard %s; want both to follow", ptrOr(j.Spec.Parallelism, 0), rc.flags["shard"])
		}
	})
	t.Run("run name", func(t *testing.T) {
		fsys := memFS(t)
		edit(t, fsys, runFile, "REPRISE_NAME=candidate-1", "REPRISE_NAME=baseline-7")
		objs := mustBuild(t, fsys, shardedDir, files)
		if got := jobNames(builtOf[batchv1.Job](objs)); !slices.Equal(got, []string{"baseline-7", "baseline-7-merge"}) {
			t.Errorf("REPRISE_NAME=baseline-7: Jobs %v", got)
		}
	})
	t.Run("image", func(t *testing.T) {
		fsys := memFS(t)
		const image = "registry.example/team/reprise:v1.2.3"
		for _, f := range []string{runFile, "k8s/proxy/kustomization.yaml"} {
			edit(t, fsys, f, "  newName: reprise\n  newTag: latest", "  newName: registry.example/team/reprise\n  newTag: v1.2.3")
		}
		for _, dir := range []string{shardedDir, "k8s/replay/overlays/job", "k8s/examples/openshift", "k8s/proxy", "k8s/examples/openshift/proxy"} {
			built, err := build(fsys, dir)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := validateBuilt(built, nil)
			if err == nil || !strings.Contains(err.Error(), image) {
				t.Errorf("deploy/%s: the image placeholder check does not see the override: %v", dir, err)
			}
			n := 0
			for _, o := range objs {
				for _, c := range podContainers(o) {
					if isReprise(c) {
						n++
						if c.Image != image {
							t.Errorf("%s: container %s: image %s, want %s", o.name(), c.Name, c.Image, image)
						}
					}
				}
			}
			if n == 0 {
				t.Errorf("deploy/%s: no Reprise container", dir)
			}
		}
	})
}

// podContainers are the containers of the pods an object makes.
func podContainers(o *object) []corev1.Container {
	switch v := o.value.(type) {
	case *batchv1.Job:
		return v.Spec.Template.Spec.Containers
	case *appsv1.Deployment:
		return v.Spec.Template.Spec.Containers
	case *corev1.Pod:
		return v.Spec.Containers
	}
	return nil
}

// TestBuiltRejects plants one mistake at a time in the files a build reads
// and requires the build, or its validation, to fail saying what is wrong:
// the checks on built manifests are not vacuous.
func TestBuiltRejects(t *testing.T) {
	_, files := mustLoad(t)
	type change struct{ file, old, new string }
	shardTarget := `  - select:
      kind: Job
      name: replay
    fieldPaths:
    - spec.template.spec.containers.[name=replay].args.1
    options:
      delimiter: /
      index: 1
`
	cases := []struct {
		name    string
		changes []change
		want    string
	}{
		{"parallelism not following N", []change{{shardedFile, "completions: 4", "completions: 8"},
			{shardedFile, "    - spec.parallelism", "    - spec.activeDeadlineSeconds"}}, "parallelism 4, completions 8"},
		{"--shard not following N", []change{{shardedFile, "completions: 4", "completions: 8"}, {shardedFile, shardTarget, ""}}, `--shard "auto/4": want auto/8`},
		{"not Indexed", []change{{shardedFile, "      completionMode: Indexed\n", ""}}, "only an Indexed Job sets"},
		{"run name not a Job name", []change{{runFile, "REPRISE_NAME=candidate-1", "REPRISE_NAME=Candidate_1"}}, `REPRISE_NAME "Candidate_1"`},
		{"merge of another directory", []change{{mergeFile, "- /data/results/$(RUN)\n", "- /data/results/other\n"}}, "merges /data/results/other"},
		{"merge on another claim", []change{{mergeFile, "claimName: reprise-replay", "claimName: reprise-captures"}}, `on claim "reprise-captures"`},
		{"shards in one directory", []change{{shardedFile, "shard-$(JOB_COMPLETION_INDEX)", "shards"}}, "each shard needs its own"},
		{"one barrier per shard", []change{{shardedFile, "/barrier", "/barrier-$(JOB_COMPLETION_INDEX)"}}, "--start-barrier"},
		{"results off the volume", []change{{shardedFile, "--output-dir=/data/results", "--output-dir=/tmp/results"}}, "not on a PersistentVolumeClaim"},
		{"undefined variable", []change{{shardedFile, "$(JOB_NAME)/barrier", "$(RUN_NAME)/barrier"}}, "$(RUN_NAME)"},
		{"JOB_NAME not the Job's", []change{{"k8s/replay/base/job.yaml", "metadata.labels['batch.kubernetes.io/job-name']", "metadata.name"}}, "env JOB_NAME"},
		{"settings from a ConfigMap not generated", []change{{"k8s/replay/base/job.yaml", "            name: reprise-replay\n", "            name: replay-settings\n"}}, "no ConfigMap replay-settings"},
		{"spread by labels the pods do not have", []change{{shardedFile, "app.kubernetes.io/name: reprise-replay", "app.kubernetes.io/name: replay"}}, "podAntiAffinity"},
		{"a retried shard", []change{{"k8s/replay/base/job.yaml", "backoffLimit: 0", "backoffLimit: 3"}}, "backoffLimit must be 0"},
		{"image not overridable", []change{{runFile, "- name: reprise\n", "- name: ghcr.io/reprise\n"}, {"k8s/replay/base/job.yaml", "image: reprise:latest", "image: ghcr.io/x/reprise:v1"}}, "want the placeholder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := memFS(t)
			for _, ch := range c.changes {
				edit(t, fsys, ch.file, ch.old, ch.new)
			}
			_, err := buildAndCheck(fsys, shardedDir, files)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case !strings.Contains(err.Error(), c.want):
				t.Fatalf("the error does not say %q: %v", c.want, err)
			}
		})
	}
}

// TestPlantedTyposInPatches misspells every field of every patch written
// inline in a kustomization (a string there, out of TestPlantedTypos'
// reach) and requires a build that reads it to fail naming the field.
func TestPlantedTyposInPatches(t *testing.T) {
	docs, files := mustLoad(t)
	dirs, all := kustomizationDirs(files)
	planted := 0
	for i, d := range docs {
		k, ok := files[i].value.(*kustypes.Kustomization)
		if !ok {
			continue
		}
		dir := path.Dir(d.file)
		var users []string
		for _, top := range dirs {
			if dependsOn(all, top, dir) {
				users = append(users, top)
			}
		}
		for pi, p := range k.Patches {
			if p.Patch == "" {
				continue
			}
			pj, err := yaml.YAMLToJSON([]byte(p.Patch))
			if err != nil {
				t.Fatal(err)
			}
			tree, err := jsonTree(pj)
			if err != nil {
				t.Fatal(err)
			}
			for _, kp := range keyPaths(tree, nil) {
				if freeForm(kp) {
					continue
				}
				key := kp[len(kp)-1]
				typo := key + key[len(key)-1:]
				planted++
				pt, _ := jsonTree(pj)
				renameKey(pt, kp, typo)
				fsys := memFS(t)
				writePatch(t, fsys, d, pi, pt)
				var errs []error
				for _, top := range users {
					if _, err := buildAndCheck(fsys, top, files); err != nil {
						errs = append(errs, err)
					}
				}
				err := errors.Join(errs...)
				switch {
				case err == nil:
					t.Errorf("deploy/%s: patches[%d]: %s misspelt %q: every build accepted it (%v)", d.file, pi, strings.Join(kp, "."), typo, users)
				case !strings.Contains(err.Error(), typo) && !strings.Contains(err.Error(), key):
					t.Errorf("deploy/%s: patches[%d]: %s misspelt: the error names neither %q nor %q: %v", d.file, pi, strings.Join(kp, "."), key, typo, err)
				}
			}
		}
	}
	if planted == 0 {
		t.Error("no inline patch to plant typos in")
	}
	t.Logf("%d typos planted in inline patches", planted)
}

// writePatch writes the kustomization d of fsys with its patches[i].patch
// replaced by the YAML of tree.
func writePatch(t *testing.T, fsys filesys.FileSystem, d document, i int, tree any) {
	t.Helper()
	pj, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	py, err := yaml.JSONToYAML(pj)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := jsonTree(d.json)
	if err != nil {
		t.Fatal(err)
	}
	if err := setPath(kt, fmt.Sprintf("patches.%d.patch", i), string(py)); err != nil {
		t.Fatal(err)
	}
	kj, err := json.Marshal(kt)
	if err != nil {
		t.Fatal(err)
	}
	ky, err := yaml.JSONToYAML(kj)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile(path.Join(fsRoot, d.file), ky); err != nil {
		t.Fatal(err)
	}
}
