package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestReplayFlags checks every command line the manifests give Reprise's
// programs (the files, what kustomize builds from them, the Tekton steps)
// against the programs' own --help: each flag is one the (sub)command
// has, a bare flag is a boolean, and each REPRISE_* variable set for it,
// directly or from a ConfigMap of run settings, is one it reads. It runs
// the binaries `make build` wrote, which REPRISE_BIN names (make test sets
// it); without it the test is skipped.
func TestReplayFlags(t *testing.T) {
	bin := os.Getenv("REPRISE_BIN")
	if bin == "" {
		t.Skip("REPRISE_BIN unset (make test sets it to the built binaries): the manifests' flags are not checked against replay's and proxy's --help")
	}
	_, files := mustLoad(t)
	sets := [][]*object{files}
	dirs, _ := kustomizationDirs(files)
	fsys := memFS(t)
	for _, dir := range dirs {
		built, err := buildAndCheck(fsys, dir, files)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, built)
	}
	helps := map[string]help{}
	helpOf := func(argv ...string) help {
		key := strings.Join(argv, " ")
		if h, ok := helps[key]; ok {
			return h
		}
		h, err := readHelp(filepath.Join(bin, argv[0]), argv[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		helps[key] = h
		return h
	}
	checked := 0
	for _, set := range sets {
		for _, o := range set {
			for _, c := range commandLines(set, o) {
				if !isReprise(c.Container) {
					continue
				}
				checked++
				argv := slices.Concat(c.Command[1:], c.Args)
				prog := []string{commandName(c.Container)}
				if prog[0] == "replay" {
					if len(argv) == 0 {
						t.Errorf("%s: container %s: replay without a subcommand", o.name(), c.Name)
						continue
					}
					prog = append(prog, argv[0])
					argv = argv[1:]
				}
				h := helpOf(prog...)
				for _, p := range h.check(argv, c.env) {
					t.Errorf("%s: container %s: %s (%s --help)", o.name(), c.Name, p, strings.Join(prog, " "))
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Reprise command line found")
	}
	t.Logf("%d command lines checked against %v", checked, slices.Sorted(maps.Keys(helps)))
}

// check returns what is wrong with a command line (arguments after the
// program and subcommand) and the variables it is given.
func (h help) check(argv, env []string) []string {
	var problems []string
	for _, a := range argv {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, valued := strings.Cut(strings.TrimLeft(a, "-"), "=")
		boolean, ok := h.flags[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("--%s is not one of its flags", name))
		case !valued && !boolean:
			problems = append(problems, fmt.Sprintf("--%s takes a value: write --%s=VALUE", name, name))
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "REPRISE_") && !h.env[e] {
			problems = append(problems, fmt.Sprintf("%s is not a variable it reads", e))
		}
	}
	return problems
}

// help is what a program's --help lists: its flags (name → boolean) and
// the environment variables it reads.
type help struct {
	flags map[string]bool
	env   map[string]bool
}

var (
	helpFlag = regexp.MustCompile(`^\s+--([a-z0-9][a-z0-9-]*)(?: (\S+))?\s*$`)
	helpEnv  = regexp.MustCompile(`\[(REPRISE_[A-Z0-9_]+)`)
)

// readHelp runs the program with --help (which exits 0 or 2 as the flag
// package chooses) and reads its flags and variables.
func readHelp(prog string, args ...string) (help, error) {
	out, _ := exec.Command(prog, append(args, "--help")...).CombinedOutput()
	h := help{flags: map[string]bool{}, env: map[string]bool{}}
	for line := range strings.Lines(string(out)) {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			h.flags[m[1]] = m[2] == ""
		}
		for _, m := range helpEnv.FindAllStringSubmatch(line, -1) {
			h.env[m[1]] = true
		}
	}
	if len(h.flags) == 0 {
		return h, fmt.Errorf("%s %s --help lists no flags:\n%s", prog, strings.Join(args, " "), out)
	}
	return h, nil
}

// commandLine is a container's command line and the names of the
// variables it is given, ConfigMap keys included when the set holds them.
type commandLine struct {
	corev1.Container
	env []string
}

// commandLines are the command lines an object of the set runs: its
// pods' containers, or a Tekton Task's steps.
func commandLines(set []*object, o *object) []commandLine {
	var out []commandLine
	if t, ok := o.value.(*tektonTaskSpec); ok {
		for _, s := range t.Steps {
			s = mergeStep(t.StepTemplate, s)
			c := corev1.Container{Name: s.Name, Command: s.Command, Args: s.Args, Env: s.Env}
			out = append(out, commandLine{Container: c, env: envNames(set, o, c)})
		}
		return out
	}
	for _, c := range podContainers(o) {
		out = append(out, commandLine{Container: c, env: envNames(set, o, c)})
	}
	return out
}

// envNames lists the variables a container sets, with the keys of the
// ConfigMaps of the set it reads whole (a build holds its generated
// ConfigMaps).
func envNames(set []*object, o *object, c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	for _, f := range c.EnvFrom {
		if r := f.ConfigMapRef; r != nil {
			if cm, ok := find[corev1.ConfigMap](set, o.meta.Namespace, r.Name); ok {
				for k := range cm.Data {
					names = append(names, f.Prefix+k)
				}
			}
		}
	}
	return names
}

// TestHelpCheck: the parsing of --help and the checks TestReplayFlags
// makes, on a help text of the form the programs print.
func TestHelpCheck(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	script := "#!/bin/sh\ncat <<'EOF'\nflags (each also from the environment variable shown):\n\n" +
		"  --output-dir string\n    \tdirectory (default results) [REPRISE_OUTPUT_DIR]\n" +
		"  --quiet \n    \tno progress lines [REPRISE_QUIET]\n" +
		"  --label value\n    \tkey=value [REPRISE_LABEL, repeatable; one value per line]\nEOF\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := readHelp(prog)
	if err != nil {
		t.Skipf("no /bin/sh to fake a program with: %v", err)
	}
	if !maps.Equal(h.flags, map[string]bool{"output-dir": false, "quiet": true, "label": false}) ||
		!maps.Equal(h.env, map[string]bool{"REPRISE_OUTPUT_DIR": true, "REPRISE_QUIET": true, "REPRISE_LABEL": true}) {
		t.Fatalf("parsed %v, %v", h.flags, h.env)
	}
	got := h.check([]string{"--output-dir=/x", "--quiet", "/positional", "--output-dirr=/y", "--label", "--quiet=true"},
		[]string{"REPRISE_OUTPUT_DIR", "REPRISE_OUTPUT_DIRR", "JOB_NAME"})
	want := []string{"--output-dirr is not one of its flags", "--label takes a value: write --label=VALUE", "REPRISE_OUTPUT_DIRR is not a variable it reads"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestGateExpressions gives every --fail-if expression the manifests carry
// (the Tekton gate's default and its PipelineRun's value) to `replay
// compare`, which parses the gates before reading any results: a gate it
// cannot parse is a usage error naming --fail-if. Skipped without
// REPRISE_BIN, as TestReplayFlags.
func TestGateExpressions(t *testing.T) {
	bin := os.Getenv("REPRISE_BIN")
	if bin == "" {
		t.Skip("REPRISE_BIN unset (make test sets it): the gates are not parsed by replay compare")
	}
	_, files := mustLoad(t)
	gates := map[string]string{} // expression → where
	for _, o := range files {
		switch v := o.value.(type) {
		case *tektonPipelineSpec:
			for _, p := range v.Params {
				var def string
				if p.Name == "fail-if" && json.Unmarshal(p.Default, &def) == nil {
					gates[def] = o.name() + ": param fail-if default"
				}
			}
		case *tektonPipelineRunSpec:
			for _, p := range v.Params {
				if p.Name == "fail-if" {
					gates[strings.Join(p.strings(), "")] = o.name() + ": param fail-if"
				}
			}
		}
	}
	if len(gates) == 0 {
		t.Fatal("no --fail-if expression found")
	}
	missing := filepath.Join(t.TempDir(), "none")
	for g, where := range gates {
		out, _ := exec.Command(filepath.Join(bin, "replay"), "compare", "--fail-if="+g, missing+"-a", missing+"-b").CombinedOutput()
		if strings.Contains(string(out), "--fail-if") {
			t.Errorf("%s: %q: %s", where, g, strings.TrimSpace(string(out)))
		}
	}
}
