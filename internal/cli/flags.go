package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Flags is a command's flag set, its flags declared in titled sections
// that --help prints in order. Every command of both programs declares its
// flags this way: one declaration per option (a typed flag.Value that
// checks its value in Set, its environment variable REPRISE_NAME, its
// help), and a command registers exactly the sections it honours, so its
// --help lists exactly the flags it reads.
type Flags struct {
	*flag.FlagSet
	sections []section
	fromEnv  map[string]bool // flags set from their environment variable
}

type section struct {
	title string
	names []string
}

// NewFlags returns an empty flag set for the command name ("replay run").
func NewFlags(name string) *Flags {
	return &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// Section registers, through register, the flags of one titled section.
func (f *Flags) Section(title string, register func(fs *flag.FlagSet)) {
	before := map[string]bool{}
	f.VisitAll(func(fl *flag.Flag) { before[fl.Name] = true })
	register(f.FlagSet)
	var names []string
	f.VisitAll(func(fl *flag.Flag) {
		if !before[fl.Name] {
			names = append(names, fl.Name)
		}
	})
	f.sections = append(f.sections, section{title, names})
}

// PrintUsage writes the synopsis and the flags, section by section.
func (f *Flags) PrintUsage(w io.Writer, synopsis string) {
	fmt.Fprintf(w, "usage: %s\n\nflags (each also from the environment variable shown):\n", synopsis)
	seen := map[string]bool{}
	for _, s := range f.sections {
		if len(s.names) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", s.title)
		for _, n := range s.names {
			seen[n] = true
			printFlag(w, f.Lookup(n))
		}
	}
	var rest []string
	f.VisitAll(func(fl *flag.Flag) {
		if !seen[fl.Name] {
			rest = append(rest, fl.Name)
		}
	})
	if len(rest) > 0 {
		fmt.Fprintf(w, "\nother:\n")
		for _, n := range rest {
			printFlag(w, f.Lookup(n))
		}
	}
}

// Parse parses a command's arguments (flags may follow positional
// arguments: FlagsFirst) and the environment, printing the usage for
// --help (then the error is flag.ErrHelp).
func (f *Flags) Parse(args []string, stdout io.Writer, synopsis string) error {
	byEnv := map[string]string{}
	f.VisitAll(func(fl *flag.Flag) { byEnv[EnvName(fl.Name)] = fl.Name })
	f.fromEnv = map[string]bool{}
	err := ParseLookup(f.FlagSet, FlagsFirst(f.FlagSet, args), func(k string) (string, bool) {
		v, ok := os.LookupEnv(k)
		if ok {
			f.fromEnv[byEnv[k]] = true
		}
		return v, ok
	})
	if errors.Is(err, flag.ErrHelp) {
		f.PrintUsage(stdout, synopsis)
	}
	return err
}

// Given reports whether a flag was set, on the command line or from the
// environment.
func (f *Flags) Given(name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// OnCommandLine reports whether a flag was given on the command line (not
// from its environment variable): a command refuses a flag the chosen
// settings do not use only when it was typed, since a variable may be set
// for every command of a pod or a shell.
func (f *Flags) OnCommandLine(name string) bool {
	return f.Given(name) && !f.fromEnv[name]
}

// Names are the names of every flag, sorted.
func (f *Flags) Names() []string {
	var out []string
	f.VisitAll(func(fl *flag.Flag) { out = append(out, fl.Name) })
	slices.Sort(out)
	return out
}

// FlagsFirst moves positional arguments after the flags, so that
// `replay export DIR -o FILE` parses like `replay export -o FILE DIR`
// (the flag package stops at the first positional argument). A value
// following a flag that takes one stays with it; "--" ends the flags.
func FlagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			return append(append(flags, "--"), pos...)
		case !strings.HasPrefix(a, "-") || a == "-":
			pos = append(pos, a)
		default:
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if f := fs.Lookup(name); f != nil && !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	if len(pos) > 0 {
		flags = append(flags, "--")
	}
	return append(flags, pos...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// FieldError is an error naming a configuration field (the engine's
// Config, a benchmark plan): MapFields puts the field's flag in its place.
type FieldError interface {
	error
	// FieldParts are the field's Go name, the value refused ("" when not
	// one value) and what is wrong with it.
	FieldParts() (field, value, msg string)
}

// MapFields rewrites every FieldError joined in err to name its flag,
// "--rate 0: must be > 0 ...", with flags mapping field names to flag
// names (without dashes); a field without a flag keeps its own name. Other
// errors are kept as they are. nil stays nil.
func MapFields(err error, flags map[string]string) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, MapFields(e, flags))
		}
		return errors.Join(out...)
	}
	var fe FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field, value, msg := fe.FieldParts()
	name := field
	if f, ok := flags[field]; ok {
		name = "--" + f
	}
	text := name + ": " + msg
	if value != "" {
		text = name + " " + value + ": " + msg
	}
	if error(fe) == err {
		return errors.New(text)
	}
	// A field error wrapped with context ("benchmark x: ..."): the context
	// stays, and so does what the error wraps (errors.Is still holds).
	return &mapped{text: strings.Replace(err.Error(), fe.Error(), text, 1), err: err}
}

// mapped is an error whose text names a flag where its field error named
// a field.
type mapped struct {
	text string
	err  error
}

func (m *mapped) Error() string { return m.text }
func (m *mapped) Unwrap() error { return m.err }
