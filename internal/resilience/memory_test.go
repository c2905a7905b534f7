//go:build resilience

package resilience

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// memoryCase is one workload of scenario 7.
type memoryCase struct {
	name             string
	pipeline         string // text or image
	n                int
	itemBytes        int
	maxInflightBytes int64
	batchItems       int
	batchBytes       int64
	watch            time.Duration
	outputMaxMsgs    int64         // the output stream's capacity in messages
	readEvery        time.Duration // the reader frees one message this often
}

// Scenario 7: a large backlog waits and the downstream is slow: the output
// stream holds a few messages, refuses more (discard new), and a reader
// frees one slot at a time (every 100 ms for texts, every second for large
// images). The worker can only publish as fast as the
// reader reads; every refused publish is retried with NakWithDelay. Its
// resident memory must stay within a bound derived from max_inflight_bytes
// ("bound on raw bytes fetched and not yet acked"), not grow with the
// backlog, and the consumer's MaxAckPending must follow from the limit.
//
// Two workloads: 100,000 small texts of 4 KiB (400 MiB), and 200 images of
// 4 MiB (800 MiB; a small JPEG followed by padding, so that decoding is
// cheap and the bytes held are what is measured).
func TestMemoryBoundedUnderBackpressure(t *testing.T) {
	for _, mc := range []memoryCase{
		{name: "100k small texts", pipeline: "text", n: 100_000, itemBytes: 4 << 10, maxInflightBytes: 8 << 20, batchItems: 64, batchBytes: 1 << 20, watch: 40 * time.Second, outputMaxMsgs: 32, readEvery: 100 * time.Millisecond},
		{name: "200 large images", pipeline: "image", n: 200, itemBytes: 4 << 20, maxInflightBytes: 32 << 20, batchItems: 64, batchBytes: 16 << 20, watch: 30 * time.Second, outputMaxMsgs: 4, readEvery: time.Second},
	} {
		t.Run(mc.name, func(t *testing.T) { testMemory(t, mc) })
	}
}

func testMemory(t *testing.T, mc memoryCase) {
	b := startBroker(t)
	c := client(t, b.url())
	js := c.JetStream()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := strings.ToUpper(mc.pipeline)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TENSORS_" + up, Subjects: []string{"tensors." + mc.pipeline},
		Retention: jetstream.WorkQueuePolicy, MaxMsgs: mc.outputMaxMsgs, Discard: jetstream.DiscardNew,
	}); err != nil {
		t.Fatal(err)
	}
	ensureStreams(t, c, 1, mc.pipeline)

	var items []item
	var pc pipelineConfig
	common := []any{
		"batch", map[string]any{"max_items": mc.batchItems, "max_bytes": mc.batchBytes, "max_wait": "20ms"},
		"max_inflight_bytes", mc.maxInflightBytes,
		"max_deliver", 1000,
		"retry_backoff", []string{"200ms"},
		"ack_wait", "10s",
	}
	switch mc.pipeline {
	case "text":
		items = textItems("memory", mc.n)
		filler := make([]byte, mc.itemBytes)
		for i := range filler {
			filler[i] = "abcdefgh ijklmnop "[i%18]
		}
		for i := range items {
			items[i].data = append(items[i].data[:len(items[i].data):len(items[i].data)], filler[len(items[i].data):]...)
		}
		pc = textPipeline(common...)
	case "image":
		items = imageItems(t, "memory", mc.n, 48, 40)
		for i := range items {
			padded := make([]byte, mc.itemBytes)
			copy(padded, items[i].data)
			items[i].data = padded // bytes after the end-of-image marker are ignored
		}
		// One output message per item, so the 32-message output stream
		// holds 32 items rather than 32 batches.
		pc = imagePipeline(append(common, "limits", map[string]any{"max_bytes": "8MiB"}, "output_mode", "item")...)
	}
	publishAll(t, c, items)

	cfg := writeConfig(t, b.url(), nil, pc)
	// As deployed (deploy/k8s sets GOMEMLIMIT from the pod's memory): the
	// collector then takes garbage back before the heap outgrows the limit,
	// whatever its pacing on a machine busy with other tests. A worker whose
	// live memory grew with the backlog would still cross the bound below.
	memLimit := fmt.Sprintf("GOMEMLIMIT=%dMiB", 32+3*(mc.maxInflightBytes>>20))
	w := startStokerEnv(t, "worker", cfg, []string{memLimit})
	t.Logf("worker started with %s", memLimit)
	w.waitReady(30 * time.Second)
	_, idle, err := w.memory()
	if err != nil {
		t.Fatal(err)
	}

	// The slow reader: one tensor message every readEvery.
	cons, err := js.CreateOrUpdateConsumer(ctx, "TENSORS_"+up, jetstream.ConsumerConfig{Durable: "slow-reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	readerDone := make(chan int)
	go func() {
		got := 0
		defer func() { readerDone <- got }()
		tick := time.NewTicker(mc.readEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			mb, err := cons.Fetch(1, jetstream.FetchMaxWait(100*time.Millisecond))
			if err != nil {
				continue
			}
			for m := range mb.Messages() {
				if m.DoubleAck(ctx) == nil {
					got++
				}
			}
		}
	}()

	// Watch the worker for a while: resident memory and the consumer's
	// unacknowledged count.
	var maxAckPending, peakAckPending int
	var peakRSS int64
	deadline := time.Now().Add(mc.watch)
	queuetest.WaitFor(t, mc.watch+10*time.Second, func() error {
		_, rss, err := w.memory()
		if err != nil {
			t.Fatalf("worker memory: %v (exited: %v)", err, w.waitErr)
		}
		peakRSS = max(peakRSS, rss)
		info, err := consumerInfo(t, c, "RAW_"+up, "stoker-"+mc.pipeline)
		if err == nil {
			maxAckPending = info.Config.MaxAckPending
			peakAckPending = max(peakAckPending, info.NumAckPending)
		}
		if time.Now().Before(deadline) {
			return fmt.Errorf("watching the worker for %s", mc.watch)
		}
		return nil
	})
	hwm, _, err := w.memory()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	read := <-readerDone
	retries, _ := w.metric("stoker_items_total", `outcome="retry"`)
	ok, _ := w.metric("stoker_items_total", `outcome="ok"`)

	wantMAP := config.DeriveMaxAckPending(batch.Policy{MaxItems: mc.batchItems, MaxBytes: mc.batchBytes}, mc.maxInflightBytes)
	if maxAckPending != wantMAP {
		t.Errorf("consumer MaxAckPending %d, want %d (derived from max_inflight_bytes)", maxAckPending, wantMAP)
	}
	if peakAckPending > maxAckPending {
		t.Errorf("%d items unacknowledged at once, over MaxAckPending %d", peakAckPending, maxAckPending)
	}
	if read == 0 || ok == 0 {
		t.Errorf("no progress: the reader got %d tensor messages, the worker acked %.0f items", read, ok)
	}
	if ok > float64(mc.n)/2 {
		t.Errorf("the worker acked %.0f of %d items: the downstream was not slow enough to test backpressure", ok, mc.n)
	}
	// max_inflight_bytes bounds the raw bytes fetched and not yet acked;
	// the source's fetch buffer (a quarter of it, or two max_payloads) comes
	// on top. Allow four times max_inflight_bytes above the idle worker:
	// the Go heap may reach twice its live size (GOGC=100) while refused
	// items are fetched again and again, and the tensors come on top.
	backlog := int64(mc.n) * int64(mc.itemBytes)
	bound := idle + 4*mc.maxInflightBytes
	if peakRSS > bound {
		t.Errorf("peak resident memory %.1f MiB, over the bound %.1f MiB (idle %.1f MiB + 4 × max_inflight_bytes %d MiB); the backlog is %d MiB",
			mib(peakRSS), mib(bound), mib(idle), mc.maxInflightBytes>>20, backlog>>20)
	}
	t.Logf("scenario 7 (%s): backlog %d items (%d MiB); max_inflight_bytes %d MiB; RSS idle %.1f MiB, peak sampled %.1f MiB (VmHWM %.1f MiB, startup included), bound %.1f MiB; MaxAckPending %d, peak unacknowledged %d; in %s the reader took %d tensor messages, the worker acked %.0f items and retried %.0f refused ones",
		mc.name, mc.n, backlog>>20, mc.maxInflightBytes>>20, mib(idle), mib(peakRSS), mib(hwm), mib(bound), maxAckPending, peakAckPending, mc.watch, read, ok, retries)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
