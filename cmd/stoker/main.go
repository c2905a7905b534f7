// Command stoker keeps GPUs fed: it consumes raw images and texts from NATS
// JetStream, preprocesses them in batches (on a GPU with -tags cuda, else on
// the CPU) and publishes tensors.
//
// Verbs: serve, publish, consume, preprocess, bench, demo, version. Run
// `stoker VERB --help` for each verb's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

type verb struct {
	name  string
	short string
	run   func(ctx context.Context, env *env, args []string) error
}

var verbs = []verb{
	{"serve", "run every configured pipeline (embedded NATS server when no URL is given)", runServe},
	{"publish", "publish files, lines or JSON lines as raw items", runPublish},
	{"consume", "read tensor messages, print them, optionally save them", runConsume},
	{"preprocess", "run a pipeline offline on files or lines into one safetensors file", runPreprocess},
	{"bench", "measure the preprocessing stage alone, CPU and GPU", runBench},
	{"demo", "embedded server + worker + bundled samples, then a summary table", runDemo},
	{"version", "print the version", runVersion},
}

// env is what every verb gets from main.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	// signals delivers the second SIGINT/SIGTERM (the first cancels the
	// soft-stop context).
	interrupted <-chan struct{}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var v *verb
	for i := range verbs {
		if verbs[i].name == args[0] {
			v = &verbs[i]
		}
	}
	if v == nil {
		fmt.Fprintf(stderr, "stoker: unknown verb %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	level, err := logLevel(os.Getenv("STOKER_LOG_LEVEL"))
	if err != nil {
		fmt.Fprintf(stderr, "stoker: %v\n", err)
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr, log: newLogger(stderr, level)}
	ctx, interrupted, stop := signalContext()
	defer stop()
	e.interrupted = interrupted
	err = v.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "stoker %s: %v\n", v.name, err)
	return 1
}

var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: stoker VERB [flags]\n\nverbs:")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-11s %s\n", v.name, v.short)
	}
	fmt.Fprintln(w, "\nRun 'stoker VERB --help' for the flags of a verb.")
}

// logLevel reads STOKER_LOG_LEVEL: debug, info (the default), warn or error.
func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("STOKER_LOG_LEVEL=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger logs text on a terminal and JSON otherwise, from level up.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if isTerminal(w) {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// signalContext is cancelled by the first SIGINT/SIGTERM; the returned
// channel closes on the second.
func signalContext() (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan struct{})
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-ch:
				n++
				if n == 1 {
					cancel()
				} else {
					close(second)
					return
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, second, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// newFlags makes a verb's flag set with a usage line.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("stoker "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: stoker %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping a parse error to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
