package cli

import (
	"flag"
	"slices"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("o", "", "")
	fs.Bool("quiet", false, "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"dir", "-o", "f"}, []string{"-o", "f", "--", "dir"}},
		{[]string{"-o", "f", "dir"}, []string{"-o", "f", "--", "dir"}},
		{[]string{"dir", "--quiet", "-o=f"}, []string{"--quiet", "-o=f", "--", "dir"}},
		{[]string{"--quiet", "--", "-dir"}, []string{"--quiet", "--", "-dir"}},
		{[]string{"--quiet"}, []string{"--quiet"}},
	} {
		if got := FlagsFirst(fs, c.in); !slices.Equal(got, c.want) {
			t.Errorf("FlagsFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
