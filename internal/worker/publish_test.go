package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// A bad item just under max_payload: with stoker's headers its dead letter
// would not fit, so it goes without the payload and says where the item
// is stored, instead of failing to publish on every delivery forever.
func TestDeadLetterOverMaxPayloadOmitsPayload(t *testing.T) {
	const maxPayload = 64 << 10
	h := newHarness(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	h.publish("bad" + strings.Repeat("x", maxPayload-200))
	_, stop := h.start(&echoProcessor{width: 4}, nil)
	h.waitDeadLetters(1)
	stop()
	dl := h.outputs("DLQ")[0]
	if len(dl.Data) != 0 {
		t.Errorf("dead letter carries %d payload bytes, want none", len(dl.Data))
	}
	omitted := dl.Header.Get(worker.HeaderPayloadOmitted)
	if !strings.Contains(omitted, "message 1 of stream RAW") || dl.Header.Get(worker.HeaderReason) != "corrupt" {
		t.Errorf("dead letter headers %v: want the reason and where the item is stored", dl.Header)
	}
	if got := h.items(metrics.OutcomeDeadLetter); got != 1 {
		t.Errorf("%v items dead-lettered, want 1", got)
	}
}

// lostAckPublisher stores the first output message but never delivers its
// acknowledgement, as when a stream changes leader after storing it.
type lostAckPublisher struct {
	c    *queue.Conn
	mu   sync.Mutex
	lost bool
}

func (p *lostAckPublisher) PublishAsync(subject string, data []byte, hdr nats.Header) (*queue.Pending, error) {
	p.mu.Lock()
	lose := subject == "out" && !p.lost
	p.lost = p.lost || lose
	p.mu.Unlock()
	if lose {
		if _, err := p.c.PublishAsync(subject, data, hdr); err != nil {
			return nil, err
		}
		return p.c.PublishAsync("nobody.listens", data, nil) // never acknowledged
	}
	return p.c.PublishAsync(subject, data, hdr)
}

// A batch whose publish acknowledgement is lost is published again as it
// was: the stream drops the copy, and every item is acked once and
// appears once.
func TestLostPublishAckNeitherLosesNorDuplicates(t *testing.T) {
	h := newHarness(t)
	h.pub = &lostAckPublisher{c: h.conn}
	h.publish("a", "b", "c", "d")
	_, stop := h.start(&echoProcessor{width: 4}, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: time.Second}
		o.SettleTimeout = 300 * time.Millisecond
	})
	queuetest.WaitFor(t, 10*time.Second, func() error {
		if got := h.items(metrics.OutcomeOK); got != 4 {
			return fmt.Errorf("%v items acked", got)
		}
		return nil
	})
	stop()
	if got := strings.Join(h.outputIDs(), " "); got != "item-000 item-001 item-002 item-003" {
		t.Fatalf("output items %q, want each of the four once", got)
	}
	if got := h.items(metrics.OutcomeRetry); got != 0 {
		t.Errorf("%v items retried, want 0", got)
	}
}

// failPartPublisher refuses every publish of the second part of a split
// batch of four parts.
type failPartPublisher struct{ c *queue.Conn }

func (p failPartPublisher) PublishAsync(subject string, data []byte, hdr nats.Header) (*queue.Pending, error) {
	if hdr.Get(worker.HeaderPart) == "2/4" {
		return nil, errors.New("refused by the test")
	}
	return p.c.PublishAsync(subject, data, hdr)
}

// A split batch settles each part on its own: the items of the parts that
// were stored are acked and appear once; only the failed part's items are
// retried (each alone) and then published.
func TestSplitBatchSettlesEachPart(t *testing.T) {
	h := newHarness(t)
	h.pub = failPartPublisher{c: h.conn}
	var items []string
	for i := range 8 {
		items = append(items, fmt.Sprintf("%d%s", i, strings.Repeat("x", 2999)))
	}
	h.publish(items...)
	_, stop := h.start(&echoProcessor{width: 3000}, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 8, MaxBytes: 1 << 20, MaxWait: time.Second}
		o.MaxPayload = 4<<10 + 7000 // room for two rows of 3000 bytes: four parts
	})
	h.waitOutputs(8)
	stop()
	seen := map[string]int{}
	for _, id := range h.outputIDs() {
		seen[id]++
	}
	for i := range 8 {
		if id := fmt.Sprintf("item-%03d", i); seen[id] != 1 {
			t.Errorf("%s published %d times, want once", id, seen[id])
		}
	}
	if got := h.items(metrics.OutcomeRetry); got != 2 {
		t.Errorf("%v items retried, want 2 (the failed part's)", got)
	}
}

// heldDeadLetters routes dead letters through a subject the test answers
// itself: it stores none and answers none until want different ones have
// been sent, then stores and acknowledges every one. A worker that waited
// for each dead letter's acknowledgement before sending the next would
// time out on the first, and its item would be redelivered.
type heldDeadLetters struct {
	c    *queue.Conn
	mu   sync.Mutex
	want int
	ids  map[string]bool
	held []*nats.Msg
}

func (p *heldDeadLetters) PublishAsync(subject string, data []byte, hdr nats.Header) (*queue.Pending, error) {
	if subject == "dlq" {
		subject = "hold.dlq"
	}
	return p.c.PublishAsync(subject, data, hdr)
}

// receive is the "hold.dlq" handler.
func (p *heldDeadLetters) receive(t *testing.T, m *nats.Msg) {
	p.mu.Lock()
	p.ids[m.Header.Get(nats.MsgIdHdr)] = true
	p.held = append(p.held, m)
	var release []*nats.Msg
	if len(p.ids) >= p.want {
		release, p.held = p.held, nil
	}
	p.mu.Unlock()
	for _, m := range release {
		ack, err := p.c.Publish(context.Background(), "dlq", m.Data, m.Header)
		if err != nil {
			t.Errorf("store dead letter: %v", err)
			return
		}
		reply, _ := json.Marshal(map[string]any{"stream": ack.Stream, "seq": ack.Sequence, "duplicate": ack.Duplicate})
		_ = m.Respond(reply)
	}
}

// The dead letters of a batch are sent together and waited for once.
func TestDeadLettersOfABatchGoOutTogether(t *testing.T) {
	h := newHarness(t)
	held := &heldDeadLetters{c: h.conn, want: 3, ids: map[string]bool{}}
	h.pub = held
	answer := queuetest.Connect(t, h.conn.NATS().ConnectedUrl())
	sub, err := answer.NATS().Subscribe("hold.dlq", func(m *nats.Msg) { held.receive(t, m) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	h.publish("bad1", "ok", "bad2", "bad3")
	_, stop := h.start(&echoProcessor{width: 4}, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: time.Second}
		o.SettleTimeout = time.Second
	})
	queuetest.WaitFor(t, 15*time.Second, func() error {
		if got := h.items(metrics.OutcomeDeadLetter); got != 3 {
			return fmt.Errorf("%v items dead-lettered, want 3", got)
		}
		return nil
	})
	stop()
	if got := testutil.ToFloat64(h.m.RedeliveriesTotal.WithLabelValues("echo")); got != 0 {
		t.Errorf("%v redeliveries, want none: a dead letter was waited for alone", got)
	}
	dls := h.outputs("DLQ")
	if len(dls) != 3 {
		t.Fatalf("%d dead letters stored, want 3", len(dls))
	}
	for _, dl := range dls {
		if !bytes.HasPrefix(dl.Data, []byte("bad")) {
			t.Errorf("dead letter %q is not one of the bad items", dl.Data)
		}
	}
}

// reportingProcessor is an echoProcessor that reports its device.
type reportingProcessor struct {
	echoProcessor
	device string
}

func (p *reportingProcessor) Device() string { return p.device }

// A Processor that reports its device (a GPU one fallen back to the CPU)
// labels the metrics with it, not with the pipeline's configured device.
func TestMetricsLabelTheDeviceTheProcessorReports(t *testing.T) {
	h := newHarness(t)
	h.publish("a", "b")
	_, stop := h.start(&reportingProcessor{echoProcessor: echoProcessor{width: 2}, device: "cpu-after-gpu"}, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Device = "cuda"
	})
	h.waitOutputs(2)
	stop()
	if got := testutil.ToFloat64(h.m.ItemsTotal.WithLabelValues("echo", "cpu-after-gpu", metrics.OutcomeOK)); got != 2 {
		t.Errorf("items settled under the reported device: %v, want 2", got)
	}
	if got := testutil.ToFloat64(h.m.ItemsTotal.WithLabelValues("echo", "cuda", metrics.OutcomeOK)); got != 0 {
		t.Errorf("items settled under the configured device: %v, want 0", got)
	}
}

// An input stream deleted and created again starts its sequences at 1
// again: its items are new items, not duplicates of the tensors published
// for the old stream's first messages.
func TestRecreatedInputStreamIsNotDeduplicated(t *testing.T) {
	h := newHarness(t)
	h.publish("a")
	item := func(o *worker.Options, _ *queue.SourceOptions) { o.OutputMode = worker.OutputItem }
	_, stop := h.start(&echoProcessor{width: 2}, item)
	h.waitOutputs(1)
	stop()
	ctx := context.Background()
	if err := h.conn.JetStream().DeleteStream(ctx, "RAW"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.conn.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.conn.Publish(ctx, "raw.x", []byte("b"), nats.Header{nats.MsgIdHdr: {"new-item"}}); err != nil {
		t.Fatal(err)
	}
	_, stop = h.start(&echoProcessor{width: 2}, item)
	h.waitOutputs(2)
	stop()
	if got := strings.Join(h.outputIDs(), " "); got != "item-000 new-item" {
		t.Fatalf("output items %q, want item-000 then new-item", got)
	}
}

// A dead letter that fits once the item's own Nats-* headers (kept for the
// record) are dropped keeps its payload: on a work-queue stream it is the
// only copy left.
func TestDeadLetterDropsRecordHeadersBeforeThePayload(t *testing.T) {
	const maxPayload = 64 << 10
	h := newHarness(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	data := []byte("bad" + strings.Repeat("x", maxPayload-600))
	hdr := nats.Header{nats.MsgIdHdr: {"big.jpg"}, "Nats-Note": {strings.Repeat("n", 500)}}
	if _, err := h.conn.Publish(context.Background(), "raw.x", data, hdr); err != nil {
		t.Fatal(err)
	}
	_, stop := h.start(&echoProcessor{width: 4}, nil)
	h.waitDeadLetters(1)
	stop()
	dl := h.outputs("DLQ")[0]
	if !bytes.Equal(dl.Data, data) || dl.Header.Get(worker.HeaderPayloadOmitted) != "" {
		t.Fatalf("dead letter of %d bytes (omitted: %q), want the item's %d", len(dl.Data), dl.Header.Get(worker.HeaderPayloadOmitted), len(data))
	}
	if dl.Header.Get(worker.HeaderOriginal+"Nats-Note") != "" {
		t.Errorf("the record headers were kept although they did not fit")
	}
}
