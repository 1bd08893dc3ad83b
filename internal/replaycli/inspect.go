package replaycli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	// Named insp: this package's tests call their `replay inspect` helper inspect.
	insp "github.com/reprise-llm/reprise/internal/inspect"
)

const inspectSynopsis = "replay inspect [flags] SPEC [flags]   (SPEC: a capture directory, mooncake:PATH, azure:PATH, burstgpt:PATH, prompts:PATH or synthetic:k=v,...)"

type inspectOptions struct {
	skipInvalid     bool
	html            string
	seed            int64
	rate, timeScale float64
	encoding        string
	wl              workloadFlags
}

// inspectFlags declares replay inspect's flags on fs, into o.
func inspectFlags(fs *flag.FlagSet, o *inspectOptions) {
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "skip malformed lines (counted) instead of stopping")
	fs.StringVar(&o.html, "html", "", "also write the summary as a self-contained HTML page to this file")
	fs.Int64Var(&o.seed, "seed", 42, "seed of --sample")
	fs.Float64Var(&o.rate, "rate", 0, "rescale the workload to this mean rate (requests/s), keeping the shape of its bursts")
	registerTimeScale(fs, &o.timeScale) // workloadflags.go
	fs.StringVar(&o.encoding, "tokenizer", "cl100k_base", "tokenizer verbatim prompts without a token count are measured with: a tiktoken encoding, hf:PATH to a tokenizer.json or PATH.gguf (embedded, offline)")
	registerWorkloadFlags(fs, &o.wl, true)
}

// runInspect is `replay inspect`: it opens the workload its flags name and
// prints what internal/inspect finds in it, also as a page with --html.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o inspectOptions
	fs := cli.NewFlags("replay inspect")
	fs.Section("workload", func(fs *flag.FlagSet) { inspectFlags(fs, &o) })
	// Flags may come before and after the spec.
	if err := fs.Parse(args, stdout, inspectSynopsis); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return cli.UsageError("replay inspect takes one workload spec, got %q and %q", fs.Arg(0), fs.Arg(1))
	}
	if fs.OnCommandLine("seed") && o.wl.sample == 0 {
		return cli.UsageError("replay inspect: --seed seeds --sample only; give --sample F")
	}
	spec := fs.Arg(0)
	if spec == "" {
		return cli.UsageError("replay inspect: a workload spec is required (%s)", inspectSynopsis)
	}
	t, err := o.wl.transforms(o.seed, o.rate, o.timeScale)
	if err != nil {
		return usageErr(err)
	}
	if err := insp.CheckTokenizer(o.encoding); err != nil {
		return fmt.Errorf("%w: --tokenizer %s: %v", cli.ErrUsage, o.encoding, err)
	}
	warn := newWarnings(stderr)
	src, err := openWorkload(spec, o.skipInvalid, t, warn)
	if err != nil {
		return err
	}
	defer func() {
		if c, ok := src.(io.Closer); ok {
			c.Close()
		}
	}()
	s, err := insp.Read(ctx, src, insp.Options{Spec: spec, Tokenizer: o.encoding})
	if err != nil {
		return err
	}
	warn.Finish(src)
	if err := s.CountErr(); err != nil {
		warn.Print(fmt.Sprintf("verbatim prompts left uncounted (--tokenizer %s): %v", o.encoding, err))
	}
	if err := s.Print(stdout); err != nil {
		return err
	}
	if o.html == "" {
		return nil
	}
	f, err := os.Create(o.html)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	err = s.WriteHTML(f, bench.TransformsConfig(t), time.Now())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--html %s: %w", o.html, err)
	}
	fmt.Fprintf(stdout, "\nHTML summary in %s\n", o.html)
	return nil
}
