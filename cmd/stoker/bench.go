package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/stoker-ml/stoker/bench"
	"github.com/stoker-ml/stoker/bench/e2e"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/gpu"
)

// runBench measures the preprocessing stage alone (no NATS) on CPU and GPU;
// `stoker bench e2e …` measures the whole service through NATS.
func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "e2e" {
		return runBenchE2E(ctx, e, args[1:])
	}
	fs := newFlags(e, "bench", "[e2e] --pipeline NAME [--config FILE] [--device cpu|cuda|all] [--threads N] [--batch 1,8,64,256] [--seconds S] [--lines] [--synthetic SIZES|LENGTHS] [--json] [--out FILE.json] [--plot FILE.png|.svg] [--markdown FILE.md] [INPUT…]")
	pipeline := fs.String("pipeline", "image", "pipeline to measure, by name in the configuration")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	device := fs.String("device", "all", "cpu, cuda, or all (every device this build and host have; the others are reported as missing, with why)")
	threads := fs.Int("threads", 0, "CPU threads per batch (0: all cores)")
	batchList := fs.String("batch", "1,8,64,256", "batch sizes, comma-separated")
	seconds := fs.Float64("seconds", 5, "measured seconds per device and batch size, after the warm-up")
	warmup := fs.Float64("warmup", 1, "warm-up seconds before each measurement (at least two batches)")
	windows := fs.Int("windows", 5, "measurement windows per row; the median and spread of items/s are taken over them")
	inflight := fs.Int("inflight", 1, "batches processed at once (2 lets the GPU path overlap decoding with the kernel)")
	lines := fs.Bool("lines", false, "each line of each input file is one item (text pipelines)")
	synthetic := fs.String("synthetic", "", "generated inputs instead of files: image sizes (640x480,1920x1080) or text lengths in bytes (64,512)")
	synthCount := fs.Int("synthetic-count", 8, "generated items per size or length")
	synthFormat := fs.String("synthetic-format", "jpeg", "encoding of generated images: jpeg, png, or ppm (decoded pixels: measures the transform alone)")
	asJSON := fs.Bool("json", false, "print one JSON object per line (per device and batch size) on stdout instead of the table")
	out := fs.String("out", "", "write the whole report, with the machine's facts, to this JSON file")
	plotPath := fs.String("plot", "", "draw items/s against batch size and the per-stage breakdown into this .png or .svg file")
	mdPath := fs.String("markdown", "", "write a Markdown summary (command, commit, date, table, plot) to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	batches, err := bench.ParseInts(*batchList)
	if err != nil {
		return fmt.Errorf("--batch: %w", err)
	}
	if *seconds <= 0 || *warmup < 0 || *windows <= 0 || *threads < 0 || *inflight <= 0 {
		fmt.Fprintln(e.stderr, "stoker bench: --seconds, --windows and --inflight must be positive, --warmup and --threads not negative")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, ok := cfg.Pipeline(*pipeline)
	if !ok {
		var names []string
		for _, q := range cfg.Pipelines {
			names = append(names, q.Name)
		}
		return fmt.Errorf("--pipeline %q: no such pipeline (have %s)", *pipeline, strings.Join(names, ", "))
	}
	kind := bench.KindImage
	if p.Text != nil {
		kind = bench.KindText
	}
	items, source, err := benchInputs(kind, fs.Args(), *lines, *synthetic, *synthCount, *synthFormat)
	if err != nil {
		return err
	}

	var devices []string
	missing := map[string]string{}
	switch *device {
	case "cpu", "cuda":
		devices = []string{*device}
	case "all":
		devices = []string{"cpu", "cuda"}
	default:
		fmt.Fprintf(e.stderr, "stoker bench: --device %q: want cpu, cuda or all\n", *device)
		return errUsage
	}
	for _, d := range devices {
		if d != "cuda" {
			continue
		}
		if err := gpu.Available(); err != nil {
			missing[d] = "no GPU: " + err.Error()
		}
	}
	opts := bench.Options{
		Pipeline: p.Name, Devices: devices, Threads: *threads, Batches: batches,
		Duration: time.Duration(*seconds * float64(time.Second)), Warmup: time.Duration(*warmup * float64(time.Second)),
		Windows: *windows, InFlight: *inflight, Missing: missing,
		Progress: func(dev string, b int) { e.log.Info("measuring", "pipeline", p.Name, "device", dev, "batch", b) },
	}
	if _, gone := missing["cuda"]; !gone && contains(devices, "cuda") {
		if s, err := bench.NewGPUSampler(); err != nil {
			e.log.Warn("GPU utilisation will not be reported", "err", err)
		} else {
			opts.Sampler, opts.SamplerDevice = s, "cuda"
		}
	}
	newProc := func(dev string, threads int) (bench.Processor, error) {
		cp := *p
		cp.Threads = threads
		return service.NewProcessor(&cp, dev)
	}
	rows, err := bench.Run(ctx, items, newProc, opts)
	if err != nil {
		return err
	}
	r := &bench.Report{
		Command:  commandLine(append([]string{"stoker", "bench"}, args...)),
		Date:     time.Now().UTC(),
		Machine:  bench.DescribeMachine(version, commit(), buildFlavour),
		Pipeline: p.Name,
		Inputs:   bench.Inputs{Source: source, Items: len(items), Bytes: bench.TotalBytes(items)},
		Settings: bench.Settings{WarmupS: opts.Warmup.Seconds(), SecondsS: opts.Duration.Seconds(), Windows: *windows},
		Rows:     rows,
	}
	return writeBenchOutputs(e, r, *asJSON, *out, *plotPath, *mdPath)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// benchInputs picks the items: generated ones, the files given, or the
// bundled samples for the pipeline's kind.
func benchInputs(kind string, paths []string, lines bool, synthetic string, count int, format string) ([]preprocess.Item, string, error) {
	switch {
	case synthetic != "" && len(paths) > 0:
		return nil, "", fmt.Errorf("--synthetic and input files: give one or the other")
	case synthetic != "" && kind == bench.KindImage:
		sizes, err := bench.ParseSizes(synthetic)
		if err != nil {
			return nil, "", fmt.Errorf("--synthetic: %w", err)
		}
		items, err := bench.SyntheticImages(sizes, format, count, 1)
		return items, fmt.Sprintf("synthetic %s images %s ×%d", format, synthetic, count), err
	case synthetic != "":
		lengths, err := bench.ParseInts(synthetic)
		if err != nil {
			return nil, "", fmt.Errorf("--synthetic: text lengths: %w", err)
		}
		return bench.SyntheticTexts(lengths, count, 1), fmt.Sprintf("synthetic texts of %s bytes ×%d", synthetic, count), nil
	case len(paths) > 0:
		items, err := bench.LoadFiles(paths, lines)
		return items, strings.Join(paths, " "), err
	}
	items, err := bench.Samples(kind)
	return items, "bundled samples (bench/samples)", err
}

// writeBenchOutputs prints the table or JSON lines and writes the files asked for.
func writeBenchOutputs(e *env, r *bench.Report, asJSON bool, out, plotPath, mdPath string) error {
	var err error
	if asJSON {
		err = bench.WriteJSONLines(e.stdout, r)
	} else {
		err = bench.WriteTable(e.stdout, r)
	}
	if err != nil {
		return err
	}
	if out != "" {
		if err := writeFile(out, func(f *os.File) error { return bench.WriteJSON(f, r) }); err != nil {
			return err
		}
	}
	if plotPath != "" {
		if err := bench.WritePlot(plotPath, r); err != nil {
			return err
		}
	}
	if mdPath != "" {
		rel := ""
		if plotPath != "" {
			rel = relTo(mdPath, plotPath)
		}
		if err := writeFile(mdPath, func(f *os.File) error { return bench.WriteMarkdown(f, r, rel) }); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// commandLine quotes arguments holding spaces, for the report.
func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// relTo is target as seen from the directory of from, for links.
func relTo(from, target string) string {
	if rel, err := filepath.Rel(filepath.Dir(from), target); err == nil {
		return rel
	}
	return target
}

// runBenchE2E measures the service through NATS against the stage alone
// and the broker's ceiling.
func runBenchE2E(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench e2e", "--pipeline NAME [--config FILE] [--nats URL] [--workers N] [--items N] [--rate R] [--lines] [--synthetic SIZES|LENGTHS] [--json] [--out FILE.json] [--markdown FILE.md] [INPUT…]")
	var nf natsFlags
	nf.register(fs)
	pipeline := fs.String("pipeline", "image", "pipeline to run, by name in the configuration")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	device := fs.String("device", "", "auto, cpu or cuda (default: the configuration's, auto)")
	workers := fs.Int("workers", 1, "in-process workers sharing the pipeline's consumer")
	items := fs.Int("items", 2000, "items published in each phase")
	rate := fs.Float64("rate", 0, "items/s of the paced phase that measures latency (0: half the full-speed rate)")
	paced := fs.Bool("paced", true, "run the paced phase for latency below saturation")
	stageSeconds := fs.Float64("stage-seconds", 3, "seconds the stage-alone measurement runs")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on each phase's wait for every item to arrive")
	lines := fs.Bool("lines", false, "each line of each input file is one item (text pipelines)")
	synthetic := fs.String("synthetic", "", "generated inputs instead of files: image sizes (640x480) or text lengths in bytes (256)")
	synthCount := fs.Int("synthetic-count", 8, "generated items per size or length")
	synthFormat := fs.String("synthetic-format", "jpeg", "encoding of generated images: jpeg, png, or ppm (decoded pixels: measures the transform alone)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object on stdout instead of the table")
	out := fs.String("out", "", "write the result, with the machine's facts, to this JSON file")
	mdPath := fs.String("markdown", "", "write a Markdown summary to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the full-speed phase to this file (go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *workers <= 0 || *items <= 0 || *rate < 0 || *stageSeconds <= 0 {
		fmt.Fprintln(e.stderr, "stoker bench e2e: --workers, --items and --stage-seconds must be positive, --rate not negative")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *device != "" {
		cfg.Device = *device
	}
	p, ok := cfg.Pipeline(*pipeline)
	if !ok {
		return fmt.Errorf("--pipeline %q: no such pipeline", *pipeline)
	}
	kind := bench.KindImage
	if p.Text != nil {
		kind = bench.KindText
	}
	inputs, source, err := benchInputs(kind, fs.Args(), *lines, *synthetic, *synthCount, *synthFormat)
	if err != nil {
		return err
	}
	var stopProfile func()
	defer func() {
		if stopProfile != nil {
			stopProfile()
		}
	}()
	e.log.Info("measuring the stage alone, the broker's ceiling, then the service", "pipeline", p.Name, "workers", *workers, "items", *items)
	res, err := e2e.Run(ctx, e2e.Options{
		Config: cfg, Pipeline: p.Name, Conn: nf.options("stoker-bench"), Workers: *workers, Items: *items,
		Inputs: inputs, Rate: *rate, Timeout: *timeout,
		// Workers log warnings only: each dead-lettered sample would
		// otherwise print a line.
		Logger: slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), StageSeconds: *stageSeconds,
		SkipPaced: !*paced,
		AroundFull: func(starting bool) {
			if *cpuProfile == "" {
				return
			}
			if starting {
				stop, err := startCPUProfile(*cpuProfile)
				if err != nil {
					e.log.Warn("no CPU profile", "err", err)
					return
				}
				stopProfile = stop
			} else if stopProfile != nil {
				stopProfile()
				stopProfile = nil
			}
		},
	})
	if err != nil {
		return err
	}
	rep := &e2e.Report{
		Command: commandLine(append([]string{"stoker", "bench", "e2e"}, args...)),
		Date:    time.Now().UTC(),
		Machine: bench.DescribeMachine(version, commit(), buildFlavour),
		Inputs:  bench.Inputs{Source: source, Items: len(inputs), Bytes: bench.TotalBytes(inputs)},
		Result:  *res,
	}
	if *asJSON {
		err = rep.WriteJSON(e.stdout)
	} else {
		err = rep.WriteTable(e.stdout)
	}
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeFile(*out, func(f *os.File) error { return rep.WriteJSON(f) }); err != nil {
			return err
		}
	}
	if *mdPath != "" {
		if err := writeFile(*mdPath, func(f *os.File) error { return rep.WriteMarkdown(f) }); err != nil {
			return err
		}
	}
	return nil
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
