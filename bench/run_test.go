package bench

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/preprocess"
)

// fakeProc fails items whose data is "bad" and reports a decode timing.
type fakeProc struct {
	calls  atomic.Int64
	closed atomic.Bool
	err    error
}

func (f *fakeProc) Process(_ context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	b := &preprocess.Batch{Timings: map[string]time.Duration{preprocess.StageDecode: time.Microsecond}}
	for i, it := range items {
		if string(it.Data) == "bad" {
			b.Failed = append(b.Failed, preprocess.ItemError{Index: i, ID: it.ID, Err: preprocess.ErrBadInput})
			continue
		}
		b.IDs = append(b.IDs, it.ID)
	}
	return b, nil
}

func (f *fakeProc) Close() error { f.closed.Store(true); return nil }

func TestBatchesOf(t *testing.T) {
	items := []preprocess.Item{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	tests := []struct {
		name string
		b    int
		want [][]string
	}{
		{"batch of one", 1, [][]string{{"a"}, {"b"}, {"c"}}},
		{"wraps to fill the last batch", 2, [][]string{{"a", "b"}, {"c", "a"}}},
		{"larger than the inputs repeats them", 5, [][]string{{"a", "b", "c", "a", "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]string
			for _, bt := range batchesOf(items, tc.b) {
				var ids []string
				for _, it := range bt {
					ids = append(ids, it.ID)
				}
				got = append(got, ids)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunCountsAndMissingRows(t *testing.T) {
	items := []preprocess.Item{{ID: "1", Data: []byte("ok")}, {ID: "2", Data: []byte("bad")}, {ID: "3", Data: []byte("ok!")}}
	procs := map[string]*fakeProc{}
	factory := func(dev string, threads int) (Processor, error) {
		if dev == "tpu" {
			return nil, errors.New("no TPU driver")
		}
		p := &fakeProc{}
		procs[dev] = p
		return p, nil
	}
	rows, err := Run(context.Background(), items, factory, Options{
		Pipeline: "fake", Devices: []string{"cpu", "cuda", "tpu"}, Batches: []int{1, 3}, Threads: 2, InFlight: 2,
		Duration: 20 * time.Millisecond, Warmup: time.Millisecond, Windows: 2,
		Missing: map[string]string{"cuda": "no GPU: test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6 (3 devices × 2 batch sizes)", len(rows))
	}
	for _, r := range rows {
		switch r.Device {
		case "cpu":
			if r.Missing != "" {
				t.Fatalf("cpu row missing: %s", r.Missing)
			}
			// Every measured batch is full; a third of the items is bad.
			if r.Items+r.Failed != int64(r.Batches*r.Batch) {
				t.Errorf("batch %d: %d rows + %d failed over %d batches", r.Batch, r.Items, r.Failed, r.Batches)
			}
			if r.Failed == 0 || r.Items == 0 || r.ItemsPerS <= 0 || r.MBPerS <= 0 || r.Latency.N != r.Batches {
				t.Errorf("batch %d: implausible row %+v", r.Batch, r)
			}
			if r.ItemsPerSStats.N != 2 || r.InFlight != 2 || r.Threads != 2 || r.Pipeline != "fake" {
				t.Errorf("batch %d: windows %d, in flight %d, threads %d, pipeline %q", r.Batch, r.ItemsPerSStats.N, r.InFlight, r.Threads, r.Pipeline)
			}
			if len(r.Stages) != 2 || r.Stages[0].Name != preprocess.StageDecode || r.Stages[1].Name != StageOther {
				t.Errorf("batch %d: stages %+v, want decode then other", r.Batch, r.Stages)
			}
		case "cuda":
			if r.Missing != "no GPU: test" || r.ItemsPerS != 0 {
				t.Errorf("cuda row: %+v, want the reason and no figures", r)
			}
		case "tpu":
			if !strings.Contains(r.Missing, "no TPU driver") {
				t.Errorf("tpu row: missing %q, want the factory's error", r.Missing)
			}
		}
	}
	if !procs["cpu"].closed.Load() {
		t.Error("the cpu processor was not closed")
	}
	if _, ok := procs["cuda"]; ok {
		t.Error("a processor was built for a missing device")
	}
}

func TestRunProcessorFailureBecomesMissingRow(t *testing.T) {
	factory := func(string, int) (Processor, error) { return &fakeProc{err: errors.New("out of device memory")}, nil }
	rows, err := Run(context.Background(), []preprocess.Item{{ID: "x", Data: []byte("ok")}}, factory, Options{
		Duration: 5 * time.Millisecond, Warmup: time.Millisecond, Windows: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !strings.Contains(rows[0].Missing, "out of device memory") {
		t.Errorf("rows %+v, want one row saying why it failed", rows)
	}
}

func TestRunNoInputs(t *testing.T) {
	_, err := Run(context.Background(), nil, func(string, int) (Processor, error) { return &fakeProc{}, nil }, Options{})
	if !errors.Is(err, ErrNoInputs) {
		t.Errorf("err = %v, want ErrNoInputs", err)
	}
}

func TestAddSpeedups(t *testing.T) {
	rows := []Row{
		{Device: "cpu", Pipeline: "p", Batch: 8, ItemsPerS: 100},
		{Device: "cpu", Pipeline: "p", Batch: 64, ItemsPerS: 200},
		{Device: "cuda", Pipeline: "p", Batch: 8, ItemsPerS: 250},
		{Device: "cuda", Pipeline: "p", Batch: 64, ItemsPerS: 1000},
		{Device: "cuda", Pipeline: "p", Batch: 256, ItemsPerS: 1000}, // no CPU row to compare with
	}
	addSpeedups(rows)
	want := []float64{0, 0, 2.5, 5, 0}
	for i, r := range rows {
		if math.Abs(r.SpeedupVsCPU-want[i]) > 1e-12 {
			t.Errorf("row %d (%s batch %d): speed-up %v, want %v", i, r.Device, r.Batch, r.SpeedupVsCPU, want[i])
		}
	}
}

// TestRunOnBundledSamples runs the real CPU pipelines briefly.
func TestRunOnBundledSamples(t *testing.T) {
	for _, kind := range []string{KindImage, KindText} {
		t.Run(kind, func(t *testing.T) {
			items, err := Samples(kind)
			if err != nil {
				t.Fatal(err)
			}
			p, ok := config.Default().Pipeline(kind)
			if !ok {
				t.Fatalf("no %s pipeline in the default configuration", kind)
			}
			factory := func(dev string, threads int) (Processor, error) {
				cp := *p
				cp.Threads = threads
				return service.NewProcessor(&cp, dev)
			}
			rows, err := Run(context.Background(), items, factory, Options{
				Pipeline: kind, Devices: []string{"cpu"}, Batches: []int{1, 8},
				Duration: 100 * time.Millisecond, Warmup: 10 * time.Millisecond, Windows: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2", len(rows))
			}
			for _, r := range rows {
				if r.Missing != "" {
					t.Fatalf("batch %d: %s", r.Batch, r.Missing)
				}
				if r.Items+r.Failed != int64(r.Batches*r.Batch) || r.Items == 0 {
					t.Errorf("batch %d: %d rows + %d failed over %d batches", r.Batch, r.Items, r.Failed, r.Batches)
				}
				// batch 8 covers every sample, the broken one included.
				if r.Batch == 8 && r.Failed == 0 {
					t.Errorf("batch 8: no failed item, but the samples hold one bad input")
				}
				if r.ItemsPerS <= 0 || r.MBPerS <= 0 || r.Latency.P99 < r.Latency.P50 || len(r.Stages) == 0 {
					t.Errorf("batch %d: implausible figures %+v", r.Batch, r)
				}
			}
		})
	}
}
