//go:build resilience

package resilience

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/queue/queuetest"
)

// Scenario 6: SIGTERM under load finishes and acks the formed batches,
// hands fetched-but-unbatched items back at once (Nak, not AckWait), and
// exits 0 within drain_timeout. A second worker then finishes the rest
// without publishing any item twice.
func TestGracefulDrain(t *testing.T) {
	b := startBroker(t)
	c := client(t, b.url())
	const ackWait = 60 * time.Second // long: a hand-back that waited for it would show
	const drainTimeout = 15 * time.Second
	cfg := writeConfig(t, b.url(), map[string]any{"drain_timeout": drainTimeout.String()},
		textPipeline("ack_wait", ackWait.String(), "batch", map[string]any{"max_items": 64, "max_wait": "20ms"}))

	// Long texts, so tokenising is slower than fetching and the worker
	// holds fetched items that are not yet in a batch when it is stopped.
	const n = 20000
	items := textItems("drain", n)
	long := strings.Repeat("a sentence that tokenises into several word pieces, again and again; ", 30)
	for i := range items {
		items[i].data = append(items[i].data, long...)
	}
	ensureStreams(t, c, 1, "text")
	publishAll(t, c, items)
	w1 := startStoker(t, "worker-1", cfg)
	w1.waitReady(30 * time.Second)

	ty := newTally(t, c, "text")
	queuetest.WaitFor(t, 60*time.Second, func() error {
		if err := ty.poll(); err != nil {
			return err
		}
		if got := ty.count(ids(items)).Arrived; got < 500 {
			return fmt.Errorf("%d of %d items arrived before the stop", got, n)
		}
		return nil
	})
	before, err := consumerInfo(t, c, "RAW_TEXT", "stoker-text")
	if err != nil {
		t.Fatal(err)
	}
	if before.NumAckPending == 0 {
		t.Fatalf("the worker held no unacknowledged item when stopped (pending %d); the test stops it too late", before.NumPending)
	}

	sigterm := time.Now()
	w1.signal(syscall.SIGTERM)
	code := w1.wait(drainTimeout + 5*time.Second)
	drained := time.Since(sigterm)
	if code != 0 {
		t.Errorf("worker exited %d after SIGTERM, want 0", code)
	}
	if drained > drainTimeout {
		t.Errorf("drain took %s, over drain_timeout %s", drained, drainTimeout)
	}
	if w1.countLog("signal received: draining (a second signal stops at once)") != 1 {
		t.Errorf("the worker did not log that it drains")
	}

	// Every item the worker held is settled: acked (its tensor published)
	// or handed back with Nak. A handed-back item stays "ack pending" on a
	// pull consumer until it is pulled again, so the proof is the next
	// worker: it must get every remaining item far sooner than AckWait.
	exited := time.Now()
	if err := ty.poll(); err != nil {
		t.Fatal(err)
	}
	atStop := ty.count(ids(items))
	after, err := consumerInfo(t, c, "RAW_TEXT", "stoker-text")
	if err != nil {
		t.Fatal(err)
	}
	if got := atStop.Arrived + int(after.NumPending) + after.NumAckPending + atStop.DeadLettered; got != n || atStop.Duplicates != 0 {
		t.Errorf("after the drain: %d arrived + %d never delivered + %d handed back + %d dead-lettered = %d, want %d; %d duplicates",
			atStop.Arrived, after.NumPending, after.NumAckPending, atStop.DeadLettered, got, n, atStop.Duplicates)
	}

	w2 := startStoker(t, "worker-2", cfg)
	w2.waitReady(30 * time.Second)
	ty.waitAll(ackWait/2, ids(items))
	handBack := time.Since(exited)
	final := ty.count(ids(items))
	if final.Arrived != n || final.Duplicates != 0 || final.DeadLettered != 0 || final.Unexpected != 0 {
		t.Errorf("after a second worker: %v, unexpected %d; want every item once", final, final.Unexpected)
	}
	t.Logf("scenario 6 (drain): %v; at SIGTERM %d unacknowledged; exit after %s (bound %s); %d arrived before the exit, %d handed back; a second worker finished everything %s after the exit (AckWait %s)",
		final, before.NumAckPending, drained.Round(time.Millisecond), drainTimeout, atStop.Arrived, after.NumAckPending, handBack.Round(time.Millisecond), ackWait)
}
