//go:build resilience

package resilience

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/queue/queuetest"
)

// Scenario 8: an item whose processing fails transiently every time is
// retried with NakWithDelay on the retry schedule up to max_deliver, then
// dead-lettered with its history, and never holds up the other items.
//
// The transient failure is real and needs no hook in stoker: the output
// stream is created beforehand with a max_msg_size that every short text's
// tensor fits and the poison item's does not (a long text, up to max_length
// 512 tokens). The server refuses that publish each time; to the worker it
// is a failed publish, which it treats as transient.
func TestPoisonItemIsRetriedThenDeadLettered(t *testing.T) {
	b := startBroker(t)
	c := client(t, b.url())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const maxMsgSize = 4096
	if _, err := c.JetStream().CreateStream(ctx, jetstream.StreamConfig{
		Name: "TENSORS_TEXT", Subjects: []string{"tensors.text"}, MaxMsgSize: maxMsgSize,
	}); err != nil {
		t.Fatal(err)
	}
	backoff := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
	const maxDeliver = 4
	const ackWait = 30 * time.Second
	cfg := writeConfig(t, b.url(), nil, textPipeline(
		"batch", map[string]any{"max_items": 1, "max_wait": "5ms"},
		"ack_wait", ackWait.String(),
		"max_deliver", maxDeliver,
		"retry_backoff", []string{backoff[0].String(), backoff[1].String(), backoff[2].String()},
		"text", map[string]any{"max_length": 512},
	))
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	poison := item{subject: "raw.text.poison", id: "poison", data: []byte(strings.Repeat("word ", 1000))}
	before := textItems("before", 100)
	after := textItems("after", 100)
	published := time.Now()
	publishAll(t, c, before)
	publishAll(t, c, []item{poison})
	publishAll(t, c, after)

	// The other items arrive while the poison item is still being retried.
	ty := newTally(t, c, "text")
	good := append(ids(before), ids(after)...)
	ty.waitAll(30*time.Second, good)
	if ty.dead["poison"] != 0 {
		t.Errorf("the poison item was dead-lettered before the %d other items arrived: it held them up", len(good))
	}

	ty.waitAll(ackWait/2, []string{"poison"})
	took := time.Since(published)
	got := ty.count(good)
	if got.Arrived != len(good) || got.Duplicates != 0 || got.DeadLettered != 0 {
		t.Errorf("other items: %v; want all arrived once, none dead-lettered", got)
	}
	if ty.rows["poison"] != 0 || ty.dead["poison"] != 1 {
		t.Fatalf("poison item: %d tensors, %d dead letters; want 0 and 1", ty.rows["poison"], ty.dead["poison"])
	}
	h := ty.deadHdr["poison"]
	if d := h.Get("Stoker-Deliveries"); d != strconv.Itoa(maxDeliver) {
		t.Errorf("dead letter says %s deliveries, want max_deliver %d", d, maxDeliver)
	}
	if r := h.Get("Stoker-Reason"); r != "max_deliver" {
		t.Errorf("dead letter reason %q, want max_deliver", r)
	}
	if e := h.Get("Stoker-Error"); !strings.Contains(e, "tensors.text") {
		t.Errorf("dead letter error %q does not say which publish failed", e)
	}
	// Deliveries 1..max_deliver-1 were each handed back with the delay of
	// the schedule; an AckWait expiry instead would take 30s per delivery.
	var minWait time.Duration
	for d := 1; d < maxDeliver; d++ {
		minWait += backoff[min(d-1, len(backoff)-1)]
	}
	if took < minWait {
		t.Errorf("dead-lettered %s after publishing, sooner than the retry schedule allows (%s)", took, minWait)
	}
	if took > ackWait {
		t.Errorf("dead-lettered %s after publishing: the retries waited for AckWait (%s), not the backoff", took, ackWait)
	}
	var retries float64
	queuetest.WaitFor(t, 10*time.Second, func() error {
		v, err := w.metric("stoker_items_total", `pipeline="text"`, `outcome="retry"`)
		retries = v
		if err != nil {
			return err
		}
		if v != maxDeliver-1 {
			return fmt.Errorf("stoker_items_total{outcome=retry} = %v, want %d", v, maxDeliver-1)
		}
		return nil
	})
	if w.hasExited() {
		t.Errorf("the worker exited: %v", w.waitErr)
	}
	t.Logf("scenario 8 (poison): other items %v; poison: %d dead letter after %s deliveries, %v retries, %s after publishing (schedule minimum %s, AckWait %s); error %q",
		got, ty.dead["poison"], h.Get("Stoker-Deliveries"), retries, took.Round(time.Millisecond), minWait, ackWait, h.Get("Stoker-Error"))
}

// The poison item shares a batch with good items: the output stream refuses
// the batch's message because of it. The good items must still arrive, and
// only the poison item may be dead-lettered.
func TestPoisonItemDoesNotTakeItsBatchWithIt(t *testing.T) {
	b := startBroker(t)
	c := client(t, b.url())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A batch of 8 short texts (about 20 tokens each, 4 KB of tensors)
	// fits; any batch holding the poison item (512 tokens, 12 KB for its
	// row alone) does not.
	if _, err := c.JetStream().CreateStream(ctx, jetstream.StreamConfig{
		Name: "TENSORS_TEXT", Subjects: []string{"tensors.text"}, MaxMsgSize: 8 << 10,
	}); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, b.url(), nil, textPipeline(
		"batch", map[string]any{"max_items": 8, "max_wait": "50ms"},
		"ack_wait", "30s",
		"max_deliver", 4,
		"retry_backoff", []string{"300ms", "600ms", "900ms"},
		"text", map[string]any{"max_length": 512},
	))
	goods := textItems("mate", 60)
	all := append(append(slices.Clone(goods[:30]), item{subject: "raw.text.poison", id: "poison", data: []byte(strings.Repeat("word ", 1000))}), goods[30:]...)
	ensureStreams(t, c, 1, "text")
	publishAll(t, c, all) // before the worker starts, so they are fetched together
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	ty := newTally(t, c, "text")
	ty.waitAll(30*time.Second, ids(all))
	got := ty.count(ids(goods))
	if got.Arrived != len(goods) || got.DeadLettered != 0 {
		var lost []string
		for _, id := range ids(goods) {
			if ty.dead[id] > 0 {
				lost = append(lost, id)
			}
		}
		t.Errorf("good items batched with the poison one: %v; dead-lettered with it: %v", got, lost)
	}
	if ty.dead["poison"] != 1 {
		t.Errorf("poison item: %d dead letters, want 1", ty.dead["poison"])
	}
	t.Logf("poison in a batch: good items %v", got)
}

// JetStream reads Nats-* headers as instructions to the stream a message is
// published to. An item's own, chosen so that the input stream accepts
// them, must not make the dead-letter stream refuse its dead letter (the
// worker copies the item's headers onto it).
//
// Found while testing steering. It fails today: the dead-letter publish is
// refused on every delivery ("expected stream does not match", "wrong last
// sequence"), the item is retried until the server stops delivering it
// (max_deliver+1) and then sits in the stream, neither processed nor
// dead-lettered. See .notes/resilience.md for the fix.
func TestControlHeadersDoNotBlockDeadLetters(t *testing.T) {
	b := startBroker(t)
	c := client(t, b.url())
	cfg := writeConfig(t, b.url(), nil, textPipeline("max_deliver", 3, "retry_backoff", []string{"100ms"}))
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)
	first := item{subject: "raw.text.first", id: "first", data: []byte("bad \xff")}
	publishAll(t, c, []item{first}) // dlq.text now has a message
	var items []item
	for i, h := range []nats.Header{
		{"Nats-Expected-Stream": []string{"RAW_TEXT"}},
		{"Nats-Expected-Last-Subject-Sequence": []string{"0"}}, // the item's subject is new; dlq.text is not
	} {
		items = append(items, item{subject: fmt.Sprintf("raw.text.control%d", i), id: fmt.Sprintf("control-%d-%s", i, strings.Join(keys(h), "")), data: []byte("bad \xff"), hdr: h})
	}
	publishAll(t, c, items)
	ty := newTally(t, c, "text")
	ty.waitAll(20*time.Second, append(ids(items), first.id))
	for _, it := range items {
		if ty.dead[it.id] != 1 {
			t.Errorf("%s: %d dead letters, want 1", it.id, ty.dead[it.id])
		}
	}
}

func keys(h nats.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	return out
}
