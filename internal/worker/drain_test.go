package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// slowProcessor takes a while per batch, so a drain finds items fetched
// but not yet batched.
type slowProcessor struct{ echoProcessor }

func (p *slowProcessor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	time.Sleep(20 * time.Millisecond) // simulated work, not a wait for async work
	return p.echoProcessor.Process(ctx, items)
}

// TestDrainSettlesEveryFetchedItem stops a busy pipeline softly and checks
// that every item it had fetched is settled at once: published, or handed
// back (Nak) so that another replica gets it without waiting for AckWait.
func TestDrainSettlesEveryFetchedItem(t *testing.T) {
	h := newHarness(t)
	const n = 2000
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("v%d", i)
	}
	h.publish(items...)
	_, stop := h.start(&slowProcessor{echoProcessor{width: 4}}, func(o *worker.Options, so *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 16, MaxBytes: 1 << 20, MaxWait: 5 * time.Millisecond}
		o.AckWait = time.Minute
		so.AckWait = time.Minute
		so.MaxAckPending = 1000
		so.BufferMessages = 64
	})
	h.waitOutputs(100)
	stop()
	// The items the first pipeline fetched and handed back are redelivered
	// at once to a second one: all arrive long before the one-minute AckWait.
	_, stop2 := h.start(&echoProcessor{width: 4}, func(o *worker.Options, so *queue.SourceOptions) {
		o.AckWait, so.AckWait = time.Minute, time.Minute
	})
	defer stop2()
	queuetest.WaitFor(t, 20*time.Second, func() error {
		if got := len(h.outputIDs()); got < n {
			return fmt.Errorf("%d of %d items published", got, n)
		}
		return nil
	})
	seen := map[string]bool{}
	for _, id := range h.outputIDs() {
		if seen[id] {
			t.Errorf("item %s published twice after a graceful drain", id)
		}
		seen[id] = true
	}
}
