package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
)

// overlapProcessor holds its first batch until a second batch has started
// (or until hold has passed), so the first batch finishes last when the
// pipeline runs batches side by side. It records how many ran at once.
type overlapProcessor struct {
	echoProcessor
	hold time.Duration

	mu        sync.Mutex
	calls     int
	running   int
	most      int
	secondRun chan struct{} // closed when the second call starts
}

func (p *overlapProcessor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	p.mu.Lock()
	p.calls++
	call := p.calls
	p.running++
	p.most = max(p.most, p.running)
	if call == 2 {
		close(p.secondRun)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	if call == 1 {
		select {
		case <-p.secondRun:
		case <-time.After(p.hold):
		}
	}
	return p.echoProcessor.Process(ctx, items)
}

// TestInflightBatchesOverlapAndKeepOrder checks that with InflightBatches 2
// the second batch is processed while the first still is, and that the
// first is published first all the same; with 1, batches never overlap.
func TestInflightBatchesOverlapAndKeepOrder(t *testing.T) {
	for _, tc := range []struct {
		inflight int
		hold     time.Duration // how long batch 1 waits for batch 2 to start
		most     int
	}{
		// The second batch starts at once: the hold is only a bound.
		{inflight: 2, hold: 10 * time.Second, most: 2},
		// The second batch must not start while the first runs: the hold
		// is how long the test watches for it.
		{inflight: 1, hold: 300 * time.Millisecond, most: 1},
	} {
		t.Run(fmt.Sprintf("inflight=%d", tc.inflight), func(t *testing.T) {
			h := newHarness(t)
			items := make([]string, 8)
			for i := range items {
				items[i] = fmt.Sprintf("v%d", i)
			}
			h.publish(items...)
			proc := &overlapProcessor{echoProcessor: echoProcessor{width: 4}, hold: tc.hold, secondRun: make(chan struct{})}
			_, stop := h.start(proc, func(o *worker.Options, so *queue.SourceOptions) {
				o.InflightBatches = tc.inflight
				o.Batch = batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: time.Second}
			})
			h.waitOutputs(len(items))
			stop()
			proc.mu.Lock()
			most, calls := proc.most, proc.calls
			proc.mu.Unlock()
			if most != tc.most || calls != 2 {
				t.Fatalf("%d batches, at most %d at once; want 2 batches, at most %d at once", calls, most, tc.most)
			}
			got := strings.Join(h.outputIDs(), ",")
			want := "item-000,item-001,item-002,item-003,item-004,item-005,item-006,item-007"
			if got != want {
				t.Fatalf("published in the order %s, want the order the batches were formed, %s", got, want)
			}
		})
	}
}

func TestInflightBatchesRejectsNegative(t *testing.T) {
	h := newHarness(t)
	src, err := queue.NewSource(context.Background(), h.conn, queue.SourceOptions{Stream: "RAW", Consumer: "neg", AckWait: time.Second, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	_, err = worker.New(worker.Options{Name: "echo", Output: "out", DeadLetter: "dlq", InflightBatches: -1,
		Batch: batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: time.Second}}, src, h.conn, &echoProcessor{width: 4}, h.m)
	if err == nil || !strings.Contains(err.Error(), "InflightBatches is -1") {
		t.Fatalf("New with InflightBatches -1: %v, want an error naming it", err)
	}
}
