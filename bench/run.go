package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/stoker-ml/stoker/preprocess"
)

// Processor is a preprocess.Processor that may hold resources (a GPU
// context) to release.
type Processor interface {
	preprocess.Processor
	Close() error
}

// Factory builds the processor measured on a device ("cpu" or "cuda") with
// a number of CPU threads (0: all cores).
type Factory func(device string, threads int) (Processor, error)

// UtilSampler samples a device's utilisation while a row is measured.
type UtilSampler interface {
	// Start begins sampling; Stop ends it and returns the mean
	// utilisation in percent.
	Start()
	Stop() (meanPct float64, err error)
}

// Options configure Run. Zero values take the defaults written beside them.
type Options struct {
	Pipeline string   // name written in every row
	Devices  []string // default ["cpu"]
	Threads  int      // CPU threads given to the factory; 0: all cores (reported as runtime.NumCPU)
	Batches  []int    // batch sizes; default [64]
	// Duration is the measured time per device and batch size, after the
	// warm-up; default 5s. It is cut into Windows windows.
	Duration time.Duration
	// Warmup runs before each measurement and is not counted; default 1s,
	// and at least two batches.
	Warmup  time.Duration
	Windows int // measurement windows, whose rates give the median and spread; default 5
	// InFlight is the number of batches processed at once (goroutines
	// calling Process back to back); default 1. A GPU processor overlaps
	// one batch's CPU decoding with another's kernel when it is 2 or more.
	InFlight int
	// Missing names devices that cannot run here, with the reason; their
	// rows carry the reason instead of figures.
	Missing map[string]string
	// Sampler, when set, samples utilisation during rows of this device
	// (the GPU's, through NVML).
	Sampler       UtilSampler
	SamplerDevice string
	// Progress, when set, is told before each row starts.
	Progress func(device string, batch int)
}

func (o *Options) defaults() {
	if len(o.Devices) == 0 {
		o.Devices = []string{"cpu"}
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{64}
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = time.Second
	}
	if o.Windows <= 0 {
		o.Windows = 5
	}
	if o.InFlight <= 0 {
		o.InFlight = 1
	}
}

// Row is the result for one device and batch size.
type Row struct {
	Device   string `json:"device"`
	Pipeline string `json:"pipeline"`
	Batch    int    `json:"batch"`
	Threads  int    `json:"threads"`
	InFlight int    `json:"in_flight,omitempty"` // batches processed at once
	// Missing says why this row has no figures (no GPU in this build or on
	// this host, or the processor failed); empty for a measured row.
	Missing string `json:"missing,omitempty"`

	ItemsPerS float64 `json:"items_per_s"` // median over the windows
	MBPerS    float64 `json:"mb_per_s"`    // raw input megabytes (10^6 bytes) per second, median
	// ItemsPerSStats and MBPerSStats give the median with the range and
	// spread across windows.
	ItemsPerSStats Summary `json:"items_per_s_stats"`
	MBPerSStats    Summary `json:"mb_per_s_stats"`
	Latency        Latency `json:"batch_latency"`
	// Stages is the mean time per batch in each stage the processor
	// reported, then "other" for the rest of the batch's latency.
	Stages []Stage `json:"stages,omitempty"`

	Items   int64   `json:"items"`   // rows produced during measurement
	Failed  int64   `json:"failed"`  // items reported failed during measurement (bad input)
	Batches int     `json:"batches"` // batches measured
	Seconds float64 `json:"seconds"` // measured time

	// SpeedupVsCPU is this row's items/s over the CPU row's with the same
	// batch size (GPU rows only).
	SpeedupVsCPU float64 `json:"speedup_vs_cpu,omitempty"`
	// GPUUtilPct is the mean GPU utilisation NVML reported while measuring.
	GPUUtilPct *float64 `json:"gpu_util_pct,omitempty"`
	GPUUtilErr string   `json:"gpu_util_error,omitempty"`
}

// Stage is the mean time per batch spent in one stage.
type Stage struct {
	Name   string  `json:"name"`
	MeanMS float64 `json:"mean_ms"`
	Share  float64 `json:"share_pct"` // of the mean batch latency
}

// StageOther is the part of a batch's latency no reported stage covers.
const StageOther = "other"

// stageOrder is the order stages are reported in.
var stageOrder = []string{preprocess.StageDecode, preprocess.StageTransform, preprocess.StageUpload, preprocess.StageKernel, preprocess.StageDownload}

// Run measures each device at each batch size on items and returns one row
// per (device, batch size), devices in the order given. A device in
// o.Missing, or whose processor cannot be built or fails a batch, gives a
// row that says why instead of failing the run. Only ctx ending or empty
// items fail Run.
func Run(ctx context.Context, items []preprocess.Item, newProc Factory, o Options) ([]Row, error) {
	o.defaults()
	if len(items) == 0 {
		return nil, ErrNoInputs
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var rows []Row
	for _, dev := range o.Devices {
		if why, ok := o.Missing[dev]; ok {
			for _, b := range o.Batches {
				rows = append(rows, Row{Device: dev, Pipeline: o.Pipeline, Batch: b, Threads: threads, Missing: why})
			}
			continue
		}
		proc, err := newProc(dev, o.Threads)
		if err != nil {
			for _, b := range o.Batches {
				rows = append(rows, Row{Device: dev, Pipeline: o.Pipeline, Batch: b, Threads: threads, Missing: err.Error()})
			}
			continue
		}
		for _, b := range o.Batches {
			if o.Progress != nil {
				o.Progress(dev, b)
			}
			row := Row{Device: dev, Pipeline: o.Pipeline, Batch: b, Threads: threads}
			var sampler UtilSampler
			if o.Sampler != nil && dev == o.SamplerDevice {
				sampler = o.Sampler
			}
			if err := measure(ctx, proc, items, b, o, sampler, &row); err != nil {
				if ctx.Err() != nil {
					proc.Close()
					return rows, ctx.Err()
				}
				row = Row{Device: dev, Pipeline: o.Pipeline, Batch: b, Threads: threads, Missing: "failed: " + err.Error()}
			}
			rows = append(rows, row)
		}
		if err := proc.Close(); err != nil {
			return rows, fmt.Errorf("device %s: closing the processor: %w", dev, err)
		}
	}
	addSpeedups(rows)
	return rows, nil
}

// batchesOf cuts items into batches of size b, wrapping around so every
// batch is full and every item is used; at least one batch.
func batchesOf(items []preprocess.Item, b int) [][]preprocess.Item {
	n := max(1, (len(items)+b-1)/b)
	out := make([][]preprocess.Item, n)
	k := 0
	for i := range out {
		batch := make([]preprocess.Item, b)
		for j := range batch {
			batch[j] = items[k%len(items)]
			k++
		}
		out[i] = batch
	}
	return out
}

func batchBytes(batch []preprocess.Item) int64 {
	var n int64
	for _, it := range batch {
		n += int64(len(it.Data))
	}
	return n
}

// measure warms up, then runs o.Windows windows of o.Duration/o.Windows,
// each with o.InFlight goroutines calling Process back to back.
func measure(ctx context.Context, proc Processor, items []preprocess.Item, b int, o Options, sampler UtilSampler, row *Row) error {
	batches := batchesOf(items, b)
	sizes := make([]int64, len(batches))
	for i, bt := range batches {
		sizes[i] = batchBytes(bt)
	}
	var mu sync.Mutex // guards next and the accumulators below
	next := 0
	var wItems, wBytes int64
	var lat []time.Duration
	stageSum := map[string]time.Duration{}
	counting := false

	// runUntil calls Process until the deadline passes (at least once).
	runUntil := func(deadline time.Time) error {
		for n := 0; n == 0 || time.Now().Before(deadline); n++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			mu.Lock()
			i := next
			next = (next + 1) % len(batches)
			mu.Unlock()
			start := time.Now()
			res, err := proc.Process(ctx, batches[i])
			d := time.Since(start)
			if err != nil {
				return fmt.Errorf("batch of %d items starting with %q: %w", b, batches[i][0].ID, err)
			}
			mu.Lock()
			if counting {
				lat = append(lat, d)
				wItems += int64(res.Len())
				wBytes += sizes[i]
				row.Failed += int64(len(res.Failed))
				for k, v := range res.Timings {
					stageSum[k] += v
				}
			}
			mu.Unlock()
			res.Release() // as the worker does once it has encoded a batch
		}
		return nil
	}
	// phase runs o.InFlight runUntil loops and waits for all of them.
	phase := func(d time.Duration) error {
		deadline := time.Now().Add(d)
		errs := make(chan error, o.InFlight)
		for range o.InFlight {
			go func() { errs <- runUntil(deadline) }()
		}
		var first error
		for range o.InFlight {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}

	if err := phase(o.Warmup); err != nil { // every goroutine ran at least one batch
		return err
	}
	if sampler != nil {
		sampler.Start()
	}
	counting = true
	window := o.Duration / time.Duration(o.Windows)
	var itemRates, mbRates []float64
	var total time.Duration
	var runErr error
	for range o.Windows {
		wItems, wBytes = 0, 0
		ws := time.Now()
		if runErr = phase(window); runErr != nil {
			break
		}
		el := time.Since(ws)
		total += el
		row.Items += wItems
		itemRates = append(itemRates, float64(wItems)/el.Seconds())
		mbRates = append(mbRates, float64(wBytes)/1e6/el.Seconds())
	}
	if sampler != nil {
		util, err := sampler.Stop()
		if err != nil {
			row.GPUUtilErr = err.Error()
		} else {
			row.GPUUtilPct = &util
		}
	}
	if runErr != nil {
		return runErr
	}
	row.InFlight = o.InFlight
	row.Batches = len(lat)
	row.Seconds = total.Seconds()
	row.ItemsPerSStats = Summarize(itemRates)
	row.MBPerSStats = Summarize(mbRates)
	row.ItemsPerS = row.ItemsPerSStats.Median
	row.MBPerS = row.MBPerSStats.Median
	row.Latency = LatencyOf(lat)
	row.Stages = stagesOf(stageSum, len(lat), row.Latency.Mean)
	return nil
}

// stagesOf turns per-stage sums over n batches into means, in stage
// order (unknown stage names after the known ones, by name), then "other".
func stagesOf(sum map[string]time.Duration, n int, meanLatencyMS float64) []Stage {
	if n == 0 {
		return nil
	}
	names := slices.Clone(stageOrder)
	var extra []string
	for k := range sum {
		if !slices.Contains(names, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	var out []Stage
	var covered float64
	for _, name := range names {
		d, ok := sum[name]
		if !ok {
			continue
		}
		ms := float64(d) / float64(time.Millisecond) / float64(n)
		covered += ms
		out = append(out, Stage{Name: name, MeanMS: ms})
	}
	out = append(out, Stage{Name: StageOther, MeanMS: max(meanLatencyMS-covered, 0)})
	for i := range out {
		if meanLatencyMS > 0 {
			out[i].Share = out[i].MeanMS / meanLatencyMS * 100
		}
	}
	return out
}

// addSpeedups fills SpeedupVsCPU of every measured non-CPU row that has a
// measured CPU row with the same pipeline and batch size.
func addSpeedups(rows []Row) {
	for i := range rows {
		r := &rows[i]
		if r.Device == "cpu" || r.Missing != "" {
			continue
		}
		for _, c := range rows {
			if c.Device == "cpu" && c.Missing == "" && c.Batch == r.Batch && c.Pipeline == r.Pipeline && c.ItemsPerS > 0 {
				r.SpeedupVsCPU = r.ItemsPerS / c.ItemsPerS
			}
		}
	}
}
