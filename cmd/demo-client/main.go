// Command demo-client plays the part of production clients in `make demo`:
// it replays the arrival times and token counts of a public trace through
// the official OpenAI Go SDK (github.com/openai/openai-go), so the proxy
// captures traffic from a real client library, not from Reprise itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo-client: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo-client", flag.ContinueOnError)
	baseURL := fs.String("base-url", "http://127.0.0.1:8080/v1", "OpenAI base URL (the proxy)")
	trace := fs.String("trace", "", "Azure LLM inference trace CSV to take arrival times and token counts from")
	from := fs.Duration("from", 0, "offset into the trace to start at (its first minutes may be quiet)")
	minutes := fs.Float64("minutes", 3, "minutes of the trace to replay")
	speedup := fs.Float64("speedup", 6, "compress the trace's time by this factor")
	model := fs.String("model", "demo-model", "model name to request")
	streamEvery := fs.Int("non-stream-every", 5, "every Nth request is sent without streaming (0: all stream)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *trace == "" || *minutes <= 0 || *speedup <= 0 {
		return errors.New("--trace is required; --minutes and --speedup must be positive")
	}
	src, err := workload.Open("azure:"+*trace, workload.OpenOptions{})
	if err != nil {
		return err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	prompts, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		return err
	}
	// A placeholder key: it proves the proxy never records credentials.
	client := openai.NewClient(option.WithBaseURL(*baseURL), option.WithAPIKey("sk-demo-not-a-secret"), option.WithMaxRetries(0))

	limit := *from + time.Duration(*minutes*float64(time.Minute))
	begin := time.Now()
	var wg sync.WaitGroup
	var sent, ok, failed, tokens atomic.Int64
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	for {
		req, err := src.Next()
		if errors.Is(err, io.EOF) || (err == nil && req.Offset > limit) {
			break
		}
		if err != nil {
			return err
		}
		if req.Offset < *from {
			continue
		}
		prompt, err := prompts.Prompt(&req)
		if err != nil {
			return err
		}
		due := begin.Add(time.Duration(float64(req.Offset-*from) / *speedup))
		for wait := time.Until(due); wait > 0; wait = time.Until(due) {
			select {
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			case <-progress.C:
				fmt.Fprintf(stdout, "   %5.1fs sent %d, ok %d, failed %d\n", time.Since(begin).Seconds(), sent.Load(), ok.Load(), failed.Load())
			case <-time.After(wait):
			}
		}
		stream := *streamEvery == 0 || req.Index%*streamEvery != 0
		sent.Add(1)
		wg.Add(1)
		go func(prompt string, maxTokens int, stream bool) {
			defer wg.Done()
			n, err := send(ctx, &client, *model, prompt, maxTokens, stream)
			if err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
			tokens.Add(n)
		}(prompt, req.OutputTokens, stream)
	}
	wg.Wait()
	fmt.Fprintf(stdout, "   done in %.1fs: %d requests, %d ok, %d failed, %d output tokens\n",
		time.Since(begin).Seconds(), sent.Load(), ok.Load(), failed.Load(), tokens.Load())
	if ok.Load() == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// send issues one chat completion and returns the output tokens the server
// reported. ignore_eos (a vLLM extension) forces the recorded output length.
func send(ctx context.Context, client *openai.Client, model, prompt string, maxTokens int, stream bool) (int64, error) {
	params := openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
	if maxTokens > 0 {
		params.MaxTokens = openai.Int(int64(maxTokens))
	}
	opts := []option.RequestOption{option.WithJSONSet("ignore_eos", maxTokens > 0)}
	if !stream {
		resp, err := client.Chat.Completions.New(ctx, params, opts...)
		if err != nil {
			return 0, err
		}
		return resp.Usage.CompletionTokens, nil
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := client.Chat.Completions.NewStreaming(ctx, params, opts...)
	defer s.Close()
	var n int64
	for s.Next() {
		if u := s.Current().Usage; u.CompletionTokens > 0 {
			n = u.CompletionTokens
		}
	}
	return n, s.Err()
}
