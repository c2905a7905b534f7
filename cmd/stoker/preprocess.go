package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stoker-ml/stoker/internal/publish"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess"
)

func runPreprocess(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "preprocess", "--pipeline NAME [--config FILE] [--device auto|cpu|cuda] [--lines] --out FILE.safetensors INPUT…")
	name := fs.String("pipeline", "", "pipeline to run, e.g. image or text (required)")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	device := fs.String("device", "", "auto, cpu or cuda (default: the configuration's device)")
	lines := fs.Bool("lines", false, "one item per line of each input (as stoker publish --lines)")
	out := fs.String("out", "", "safetensors file to write (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, ok := cfg.Pipeline(*name)
	if !ok {
		return fmt.Errorf("no pipeline %q in the configuration", *name)
	}
	if *device != "" {
		cfg.Device = *device
	}
	dev, err := service.ResolveDevice(cfg.Device)
	if err != nil {
		return err
	}
	items, err := readItems(ctx, fs.Args(), publish.ReadOptions{Lines: *lines})
	if err != nil {
		return err
	}
	proc, err := service.NewProcessor(p, dev)
	if err != nil {
		return err
	}
	defer proc.Close()
	b, err := proc.Process(ctx, items)
	if err != nil {
		return err
	}
	for _, f := range b.Failed {
		fmt.Fprintf(e.stderr, "%v\n", &f)
	}
	payload, err := worker.EncodeBatch(p.Name, b)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, payload, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s: %d items on %s, %d failed\n", *out, b.Len(), dev, len(b.Failed))
	if len(b.Failed) > 0 {
		return fmt.Errorf("%d of %d items failed (see above); the others are in %s", len(b.Failed), len(items), *out)
	}
	return nil
}

// readItems reads every record of the inputs, with the ids stoker publish
// would give them.
func readItems(ctx context.Context, paths []string, o publish.ReadOptions) ([]preprocess.Item, error) {
	inputs := make(chan publish.Input)
	expandErr := make(chan error, 1)
	go func() { expandErr <- publish.Expand(ctx, paths, o, inputs) }()
	var items []preprocess.Item
	var readErr error
	for in := range inputs {
		if readErr != nil {
			continue // drain
		}
		r, err := publish.Open(in, o, nil)
		if err != nil {
			readErr = err
			continue
		}
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = fmt.Errorf("%s: %w", in.Path, err)
				break
			}
			items = append(items, preprocess.Item{ID: rec.ID, Data: rec.Data})
		}
		r.Close()
	}
	if err := <-expandErr; err != nil {
		return nil, err
	}
	return items, readErr
}
