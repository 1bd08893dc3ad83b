package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/sim"
)

// runSim serves the simulator until ctx is cancelled.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := sim.DefaultConfig()
	fs, listen := simFlags(&cfg)
	if err := fs.Parse(args, stdout, "replay sim [--listen ADDR] [flags]"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError("replay sim: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on --listen %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: time.Minute}
	fmt.Fprintf(stdout, "sim listening on http://%s (model %s, %d slots)\n", ln.Addr(), cfg.Model, cfg.Slots)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving: %w", err)
		}
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		_ = srv.Close()
	}
	return nil
}

// simFlags are replay sim's flags: where it listens, and the simulated
// engine's options (sim.Config.RegisterFlags), into cfg.
func simFlags(cfg *sim.Config) (*cli.Flags, *string) {
	fs := cli.NewFlags("replay sim")
	var listen *string
	fs.Section("server", func(fs *flag.FlagSet) {
		listen = fs.String("listen", "127.0.0.1:8000", "address to serve the simulator on")
	})
	fs.Section("simulated engine", cfg.RegisterFlags)
	return fs, listen
}
