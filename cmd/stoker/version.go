package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "stoker %s (%s, %s, %s)\n", version, commit(), runtime.Version(), buildFlavour)
	return nil
}

// revision is set at link time by `make build`: -ldflags "-X main.revision=…"
// (the Go toolchain records it too, unless -buildvcs=false).
var revision = ""

// commit is the VCS revision the binary was built from, when it is known.
func commit() string {
	if revision != "" {
		return revision[:min(12, len(revision))]
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value[:min(12, len(s.Value))]
			}
		}
	}
	return "unknown commit"
}
