package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoProcessor makes one uint8 row per item holding the item's bytes
// (padded to width), rejects items starting with "bad", and fails the
// whole batch while any item starts with "flaky" and failFlaky is set.
type echoProcessor struct {
	width     int
	mu        sync.Mutex
	failFlaky bool
	flakyErr  error // the whole-batch error; nil: "device busy"
	batches   []int
	released  int // batches the worker released
}

func (p *echoProcessor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	p.mu.Lock()
	p.batches = append(p.batches, len(items))
	fail := p.failFlaky
	p.mu.Unlock()
	out := &preprocess.Batch{Pipeline: "echo", RowFacts: map[string][]any{"len": nil}}
	out.OnRelease(func() {
		p.mu.Lock()
		p.released++
		p.mu.Unlock()
	})
	var data []byte
	for i, it := range items {
		if fail && bytes.HasPrefix(it.Data, []byte("flaky")) {
			if p.flakyErr != nil {
				return nil, p.flakyErr
			}
			return nil, errors.New("device busy")
		}
		if bytes.HasPrefix(it.Data, []byte("bad")) {
			out.Failed = append(out.Failed, preprocess.ItemError{Index: i, ID: it.ID,
				Err: preprocess.Reject(preprocess.ReasonCorrupt, "item %q: cannot read it", it.ID)})
			continue
		}
		row := make([]byte, p.width)
		copy(row, it.Data)
		data = append(data, row...)
		out.IDs = append(out.IDs, it.ID)
		out.RowFacts["len"] = append(out.RowFacts["len"], len(it.Data))
	}
	out.Tensors = []preprocess.Tensor{{Name: "x", DType: preprocess.Uint8, Shape: []int{len(out.IDs), p.width}, Data: data}}
	return out, nil
}

type harness struct {
	t    *testing.T
	conn *queue.Conn
	m    *metrics.Metrics
	reg  *prometheus.Registry
	pub  worker.Publisher // what start's pipelines publish with; nil: conn
}

func newHarness(t *testing.T, opts ...queuetest.ServerOption) *harness {
	t.Helper()
	srv := queuetest.RunServer(t, opts...)
	c := queuetest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	for _, s := range []queue.StreamSpec{
		{Name: "RAW", Subjects: []string{"raw.>"}},
		{Name: "OUT", Subjects: []string{"out"}},
		{Name: "DLQ", Subjects: []string{"dlq"}},
	} {
		if _, err := c.EnsureStream(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	return &harness{t: t, conn: c, m: metrics.New(reg), reg: reg}
}

func (h *harness) publish(items ...string) {
	h.t.Helper()
	for i, it := range items {
		hdr := map[string][]string{"Nats-Msg-Id": {fmt.Sprintf("item-%03d", i)}}
		if _, err := h.conn.Publish(context.Background(), "raw.x", []byte(it), hdr); err != nil {
			h.t.Fatal(err)
		}
	}
}

// start runs a pipeline over the shared consumer and returns it with a stop
// function that drains it and waits for Run to return.
func (h *harness) start(proc preprocess.Processor, mod func(*worker.Options, *queue.SourceOptions)) (*worker.Pipeline, func()) {
	h.t.Helper()
	so := queue.SourceOptions{Stream: "RAW", Consumer: "echo", AckWait: 2 * time.Second, MaxAckPending: 100}
	o := worker.Options{
		Name: "echo", Output: "out", DeadLetter: "dlq",
		Batch:        batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: 5 * time.Millisecond},
		RetryBackoff: []time.Duration{10 * time.Millisecond},
		MaxDeliver:   3,
		AckWait:      2 * time.Second,
		MaxPayload:   h.conn.MaxPayload(),
	}
	if mod != nil {
		mod(&o, &so)
	}
	ctx := context.Background()
	src, err := queue.NewSource(ctx, h.conn, so)
	if err != nil {
		h.t.Fatal(err)
	}
	var pub worker.Publisher = h.conn
	if h.pub != nil {
		pub = h.pub
	}
	p, err := worker.New(o, src, pub, proc, h.m)
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, func() {
		p.Drain()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Fatal("pipeline did not stop within 10s of Drain")
		}
	}
}

// outputs reads every message of a stream: decoded ids per message.
func (h *harness) outputs(stream string) []jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.conn.JetStream().Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

// outputIDs decodes every output message and returns the item ids in order
// of arrival, checking each message's tensor against its ids.
func (h *harness) outputIDs() []string {
	h.t.Helper()
	var ids []string
	for _, m := range h.outputs("OUT") {
		ts, md, err := safetensors.Decode(m.Data)
		if err != nil {
			h.t.Fatalf("output seq %d: %v", m.Sequence, err)
		}
		var got []string
		if err := jsonUnmarshal(md["ids"], &got); err != nil {
			h.t.Fatalf("output seq %d: ids metadata %q: %v", m.Sequence, md["ids"], err)
		}
		if len(ts) != 1 || ts[0].Shape[0] != len(got) {
			h.t.Fatalf("output seq %d: tensors %v for %d ids", m.Sequence, ts, len(got))
		}
		if m.Header.Get(worker.HeaderItems) != fmt.Sprint(len(got)) || m.Header.Get(worker.HeaderPipeline) != "echo" {
			h.t.Fatalf("output seq %d: headers %v", m.Sequence, m.Header)
		}
		ids = append(ids, got...)
	}
	return ids
}

// items is the count of the echo pipeline's items settled with outcome.
func (h *harness) items(outcome string) float64 {
	return testutil.ToFloat64(h.m.ItemsTotal.WithLabelValues("echo", "cpu", outcome))
}

// waitDeadLetters waits until the dead-letter stream holds exactly n
// messages.
func (h *harness) waitDeadLetters(n int) {
	h.t.Helper()
	queuetest.WaitFor(h.t, 15*time.Second, func() error {
		if got := len(h.outputs("DLQ")); got != n {
			return fmt.Errorf("%d dead letters, want %d", got, n)
		}
		return nil
	})
}

func (h *harness) waitOutputs(n int) {
	h.t.Helper()
	queuetest.WaitFor(h.t, 15*time.Second, func() error {
		if got := len(h.outputIDs()); got < n {
			return fmt.Errorf("%d of %d items published", got, n)
		}
		return nil
	})
}

func TestGoodAndBadItemsInOneBatch(t *testing.T) {
	h := newHarness(t)
	h.publish("a", "bad1", "b", "", "c")
	proc := &echoProcessor{width: 4}
	_, stop := h.start(proc, nil)
	h.waitOutputs(3)
	h.waitDeadLetters(2)
	stop()
	ids := h.outputIDs()
	sort.Strings(ids)
	if strings.Join(ids, ",") != "item-000,item-002,item-004" {
		t.Fatalf("published ids %v", ids)
	}
	reasons := map[string]string{}
	for _, m := range h.outputs("DLQ") {
		id := m.Header.Get(worker.HeaderItemID)
		reasons[id] = m.Header.Get(worker.HeaderReason)
		if m.Header.Get(worker.HeaderError) == "" {
			t.Errorf("dead letter %s has no %s header", id, worker.HeaderError)
		}
		if !strings.Contains(m.Header.Get(worker.HeaderError), id) {
			t.Errorf("dead letter %s: error %q does not name the item", id, m.Header.Get(worker.HeaderError))
		}
	}
	if reasons["item-001"] != preprocess.ReasonCorrupt || reasons["item-003"] != preprocess.ReasonEmpty {
		t.Fatalf("dead-letter reasons %v", reasons)
	}
	if got := h.items(metrics.OutcomeOK); got != 3 {
		t.Errorf("ok items metric %v, want 3", got)
	}
	if got := testutil.ToFloat64(h.m.DeadLettersTotal.WithLabelValues("echo", preprocess.ReasonEmpty)); got != 1 {
		t.Errorf("empty dead letters metric %v, want 1", got)
	}
}

func TestBatchingByCountAndWait(t *testing.T) {
	h := newHarness(t)
	items := make([]string, 10)
	for i := range items {
		items[i] = fmt.Sprintf("i%d", i)
	}
	h.publish(items...)
	proc := &echoProcessor{width: 4}
	_, stop := h.start(proc, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 4, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond}
	})
	h.waitOutputs(10)
	stop()
	total := 0
	proc.mu.Lock()
	for _, n := range proc.batches {
		if n > 4 {
			t.Errorf("batch of %d items exceeds max_items 4", n)
		}
		total += n
	}
	if proc.released != len(proc.batches) {
		t.Errorf("%d of %d batches released after publishing", proc.released, len(proc.batches))
	}
	proc.mu.Unlock()
	if total != 10 {
		t.Fatalf("processed %d items, want 10", total)
	}
	if got := testutil.ToFloat64(h.m.BatchesTotal.WithLabelValues("echo", "cpu", string(batch.TriggerMaxItems))); got < 2 {
		t.Errorf("max_items trigger fired %v times, want >= 2", got)
	}
}

// TestTransientFailureRetriesThenDeadLetters fails a batch on every
// delivery: the item is retried, counted under the failure's reason (a GPU
// error carries its own), then dead-lettered as max_deliver.
func TestTransientFailureRetriesThenDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{nil, "transient"},
		{fmt.Errorf("gpu: batch of 1 images: %w", kernels.ErrOutOfMemory), "gpu_out_of_memory"},
		{fmt.Errorf("gpu: batch of 1 images: %w", kernels.ErrDeviceLost), "gpu_lost"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			h := newHarness(t)
			h.publish("flaky-1", "ok-1")
			proc := &echoProcessor{width: 8, failFlaky: true, flakyErr: tc.err}
			_, stop := h.start(proc, func(o *worker.Options, _ *queue.SourceOptions) {
				o.Batch.MaxItems = 1
			})
			h.waitOutputs(1)
			h.waitDeadLetters(1)
			stop()
			dl := h.outputs("DLQ")[0]
			if dl.Header.Get(worker.HeaderReason) != "max_deliver" || dl.Header.Get(worker.HeaderDeliver) != "3" {
				t.Fatalf("dead letter headers %v", dl.Header)
			}
			if e := dl.Header.Get(worker.HeaderError); !strings.HasPrefix(e, `item "item-000": transient failure: `) {
				t.Errorf("dead letter error %q does not name the item and the failure", e)
			}
			if !bytes.Equal(dl.Data, []byte("flaky-1")) {
				t.Fatalf("dead letter payload %q, want the original", dl.Data)
			}
			if got := h.items(metrics.OutcomeRetry); got != 2 {
				t.Errorf("retries %v, want 2 (deliveries 1 and 2)", got)
			}
			if got := testutil.ToFloat64(h.m.FailuresTotal.WithLabelValues("echo", tc.reason)); got != 2 {
				t.Errorf("failures with reason %s: %v, want 2 (deliveries 1 and 2)", tc.reason, got)
			}
		})
	}
}

func TestSplitsBatchOverMaxPayload(t *testing.T) {
	h := newHarness(t)
	items := make([]string, 8)
	for i := range items {
		items[i] = fmt.Sprintf("item%d", i)
	}
	h.publish(items...)
	proc := &echoProcessor{width: 3000}
	_, stop := h.start(proc, func(o *worker.Options, _ *queue.SourceOptions) {
		o.Batch = batch.Policy{MaxItems: 8, MaxBytes: 1 << 20, MaxWait: time.Second}
		o.MaxPayload = 4<<10 + 7000 // room for two rows of 3000 bytes
	})
	h.waitOutputs(8)
	stop()
	msgs := h.outputs("OUT")
	if len(msgs) < 4 {
		t.Fatalf("%d messages for 8 rows of 3000 bytes under a 7000-byte budget; want >= 4", len(msgs))
	}
	for _, m := range msgs {
		if m.Header.Get(worker.HeaderPart) == "" {
			t.Errorf("split message seq %d has no %s header", m.Sequence, worker.HeaderPart)
		}
	}
	if got := len(h.outputIDs()); got != 8 {
		t.Fatalf("%d ids, want 8", got)
	}
}

// In item mode each message's Nats-Msg-Id is the item's position in its
// stream, and Stoker-Item-Id its id: two different items that share a
// producer's id (published outside the input stream's duplicate window,
// such as a camera's "latest.jpg") are both published, not dropped as
// duplicates of each other by the output stream.
func TestItemModeSetsPerItemMsgID(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	st, err := h.conn.JetStream().Stream(ctx, "RAW")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := h.conn.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	h.publish("a", "b")
	hdr := nats.Header{nats.MsgIdHdr: {"item-000"}} // the first item's id again
	queuetest.WaitFor(t, 30*time.Second, func() error {
		ack, err := h.conn.Publish(ctx, "raw.x", []byte("c"), hdr)
		if err != nil {
			return err
		}
		if ack.Duplicate {
			return errors.New("still inside the input stream's duplicate window")
		}
		return nil
	})
	_, stop := h.start(&echoProcessor{width: 2}, func(o *worker.Options, _ *queue.SourceOptions) {
		o.OutputMode = worker.OutputItem
	})
	h.waitOutputs(3)
	stop()
	var got, want []string
	for i, m := range h.outputs("OUT") {
		got = append(got, m.Header.Get(nats.MsgIdHdr)+" "+m.Header.Get(worker.HeaderItemID)+" "+string(m.Data[len(m.Data)-2:]))
		in, err := st.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("echo:RAW:%d:%d %s %s\x00", i+1, in.Time.UnixNano(), in.Header.Get(nats.MsgIdHdr), in.Data))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("item-mode messages (Nats-Msg-Id, Stoker-Item-Id, last tensor bytes):\n got %q\nwant %q", got, want)
	}
}

// gatedProcessor is an echoProcessor whose batches after the first wait
// until gate is closed (at most 10 s), and which closes opens, when set,
// on its first batch.
type gatedProcessor struct {
	echoProcessor
	gate      <-chan struct{}
	opens     chan struct{}
	calls     int
	firstOnce sync.Once
}

func (p *gatedProcessor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	p.mu.Lock()
	p.calls++
	later := p.calls > 1
	p.mu.Unlock()
	if p.opens != nil {
		p.firstOnce.Do(func() { close(p.opens) })
	}
	if p.gate != nil && later {
		select {
		case <-p.gate:
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.echoProcessor.Process(ctx, items)
}

func TestTwoWorkersSplitWithoutLossOrDuplicates(t *testing.T) {
	h := newHarness(t)
	const n = 200
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("v%d", i)
	}
	h.publish(items...)
	// Worker 1 would take every item before worker 2 has started: after
	// its first batch it waits for worker 2's first, and each worker
	// fetches only a few items ahead, so the rest stay for worker 2.
	gate := make(chan struct{})
	p1 := &gatedProcessor{echoProcessor: echoProcessor{width: 4}, gate: gate}
	p2 := &gatedProcessor{echoProcessor: echoProcessor{width: 4}, opens: gate}
	fewAhead := func(_ *worker.Options, so *queue.SourceOptions) { so.BufferMessages, so.BufferBytes = 8, 64 }
	_, stop1 := h.start(p1, fewAhead)
	_, stop2 := h.start(p2, fewAhead)
	h.waitOutputs(n)
	stop1()
	stop2()
	ids := h.outputIDs()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("id %s published %d times", id, k)
		}
	}
	count := func(p *echoProcessor) (s int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, b := range p.batches {
			s += b
		}
		return s
	}
	if count(&p1.echoProcessor) == 0 || count(&p2.echoProcessor) == 0 {
		t.Fatalf("work not shared: worker 1 processed %d, worker 2 %d", count(&p1.echoProcessor), count(&p2.echoProcessor))
	}
}
