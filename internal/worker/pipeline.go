package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
)

// Source is where a pipeline's input messages come from (a queue.Source).
type Source interface {
	Next(ctx context.Context) (*queue.Message, error)
	Drain()
	Stop()
}

// Publisher sends output and dead-letter messages (a *queue.Conn).
type Publisher interface {
	PublishAsync(subject string, data []byte, hdr nats.Header) (*queue.Pending, error)
}

// Output modes.
const (
	// OutputBatch publishes one message per batch (split when larger than
	// the server's max_payload). A crash after publishing and before
	// acking, or an acknowledgement lost on every try, can publish a
	// batch's items twice.
	OutputBatch = "batch"
	// OutputItem publishes one message per item with Nats-Msg-Id
	// "<pipeline>:<stream>:<stream sequence>:<stored time, Unix ns>", so
	// the stream's duplicate window drops a re-publication after a crash.
	OutputItem = "item"
)

// Headers stoker sets on the messages it publishes.
const (
	HeaderPipeline = "Stoker-Pipeline"
	HeaderItems    = "Stoker-Items"
	HeaderPart     = "Stoker-Part"    // "k/n" when a batch is split into n messages
	HeaderError    = "Stoker-Error"   // dead letters: why the item was rejected
	HeaderItemID   = "Stoker-Item-Id" // dead letters, and outputs in item mode: the item's id
	HeaderReason   = "Stoker-Reason"  // dead letters: the reason code
	HeaderDeliver  = "Stoker-Deliveries"
	HeaderSubject  = "Stoker-Subject" // dead letters: the subject the item arrived on
)

// Options configure a Pipeline. Zero values take the defaults written here.
type Options struct {
	Name       string // required
	Device     string // label for metrics (unless the Processor is a DeviceReporter); default "cpu"
	Output     string // output subject; required
	DeadLetter string // dead-letter subject; required
	OutputMode string // OutputBatch (default) or OutputItem

	Batch batch.Policy
	// MaxItemBytes rejects larger items before any work; 0 = no limit.
	MaxItemBytes int64
	// MaxInflightBytes bounds the raw bytes held between fetch and settle;
	// default 256 MiB.
	MaxInflightBytes int64
	// InflightBatches is how many batches the Processor works on at once;
	// default 1. With 2, a GPU pipeline decodes the next batch on the CPU
	// while the GPU transforms this one. Batches are published in the
	// order they were formed whatever order they finish in.
	InflightBatches int
	// MaxDeliver is the delivery on which a transiently failing item is
	// dead-lettered instead of retried; default 5.
	MaxDeliver int
	// RetryBackoff is the NakWithDelay schedule, indexed by delivery count;
	// default 1s, 5s, 30s.
	RetryBackoff []time.Duration
	// AckWait is the consumer's; InProgress is sent every third of it while
	// a batch is worked on. Default 30s.
	AckWait time.Duration
	// MaxPayload is the largest message the server accepts; default 1 MiB.
	MaxPayload int64
	// SettleTimeout bounds waiting for publish acknowledgements; default 10s.
	SettleTimeout time.Duration

	Logger *slog.Logger // default slog.Default()
}

func (o *Options) fill() error {
	if o.Name == "" || o.Output == "" || o.DeadLetter == "" {
		return errors.New("worker: a pipeline needs a name, an output subject and a dead-letter subject")
	}
	if o.Device == "" {
		o.Device = "cpu"
	}
	if o.OutputMode == "" {
		o.OutputMode = OutputBatch
	}
	if o.OutputMode != OutputBatch && o.OutputMode != OutputItem {
		return fmt.Errorf("worker: pipeline %s: output mode %q (want batch or item)", o.Name, o.OutputMode)
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = 256 << 20
	}
	if o.InflightBatches == 0 {
		o.InflightBatches = 1
	}
	if o.InflightBatches < 0 {
		return fmt.Errorf("worker: pipeline %s: InflightBatches is %d, want 1 or more", o.Name, o.InflightBatches)
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	if len(o.RetryBackoff) == 0 {
		o.RetryBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1 << 20
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Pipeline is one configured pipeline running in this process.
type Pipeline struct {
	opts   Options
	src    Source
	pub    Publisher
	proc   preprocess.Processor
	m      *metrics.Metrics
	log    *slog.Logger
	budget *preprocess.Budget // raw bytes held between fetch and settle

	drainOnce sync.Once
	draining  chan struct{}
}

// New makes a pipeline; Run starts it.
func New(opts Options, src Source, pub Publisher, proc preprocess.Processor, m *metrics.Metrics) (*Pipeline, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if _, err := batch.NewBatcher[*entry](opts.Batch); err != nil {
		return nil, fmt.Errorf("worker: pipeline %s: %w", opts.Name, err)
	}
	return &Pipeline{
		opts:     opts,
		src:      src,
		pub:      pub,
		proc:     proc,
		m:        m,
		log:      opts.Logger.With("pipeline", opts.Name),
		budget:   preprocess.NewBudget(opts.MaxInflightBytes),
		draining: make(chan struct{}),
	}, nil
}

// entry is one input message on its way through the pipeline.
type entry struct {
	msg     *queue.Message
	id      string
	size    int64
	arrived time.Time
}

// work is a closed batch on its way to processing and publishing.
type work struct {
	entries []*entry
	trigger batch.Trigger
	closed  time.Time
	result  *preprocess.Batch
	err     error         // whole-batch transient failure
	done    chan struct{} // closed when result and err are set
	// stopKeepAlive ends the InProgress signals sent for the entries from
	// when the batch is formed until it is settled.
	stopKeepAlive func()
}

// Drain asks the pipeline to stop softly: no more fetching, fetched items
// not yet in a batch are handed back at once, formed batches are finished.
// Run returns when that is done.
func (p *Pipeline) Drain() {
	p.drainOnce.Do(func() {
		close(p.draining)
		p.src.Drain()
	})
}

// Run runs the pipeline until it is drained (returns nil) or ctx is
// cancelled (returns ctx.Err(); in-flight items are left for redelivery).
func (p *Pipeline) Run(ctx context.Context) error {
	p.m.Up.WithLabelValues(p.opts.Name).Set(1)
	defer p.m.Up.WithLabelValues(p.opts.Name).Set(0)

	entries := make(chan *entry, max(p.opts.Batch.MaxItems, 1))
	batches := make(chan *work)
	results := make(chan *work, 1)

	var wg sync.WaitGroup
	var fetchErr error
	wg.Add(4)
	go func() { defer wg.Done(); fetchErr = p.fetch(ctx, entries) }()
	go func() { defer wg.Done(); p.batch(ctx, entries, batches) }()
	go func() { defer wg.Done(); p.process(ctx, batches, results) }()
	go func() { defer wg.Done(); p.publish(ctx, results) }()
	wg.Wait()
	if ctx.Err() != nil {
		p.src.Stop()
		return ctx.Err()
	}
	return fetchErr
}

func (p *Pipeline) isDraining() bool {
	select {
	case <-p.draining:
		return true
	default:
		return false
	}
}

// fetch reads messages until the source closes or ctx ends.
func (p *Pipeline) fetch(ctx context.Context, out chan<- *entry) error {
	defer close(out)
	for {
		msg, err := p.src.Next(ctx)
		if errors.Is(err, queue.ErrSourceClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("worker: pipeline %s: %w", p.opts.Name, err)
		}
		if p.isDraining() {
			p.settle(ctx, &entry{msg: msg, id: msg.ID()}, errHandBack)
			continue
		}
		e := &entry{msg: msg, id: msg.ID(), size: int64(len(msg.Data)), arrived: time.Now()}
		p.m.ItemBytesTotal.WithLabelValues(p.opts.Name).Add(float64(e.size))
		if msg.Delivered > 1 {
			p.m.RedeliveriesTotal.WithLabelValues(p.opts.Name).Inc()
		}
		if err := p.admit(e); err != nil {
			p.settle(ctx, e, err)
			continue
		}
		if err := p.budget.Acquire(ctx, e.size); err != nil {
			return nil
		}
		p.m.InflightBytes.WithLabelValues(p.opts.Name).Set(float64(p.budget.Held()))
		select {
		case out <- e:
		case <-ctx.Done():
			return nil
		}
	}
}

// admit checks what can be known of an item before any work on it.
func (p *Pipeline) admit(e *entry) error {
	switch {
	case e.size == 0:
		return preprocess.Reject(preprocess.ReasonEmpty, "item %q is empty (zero bytes)", e.id)
	case p.opts.MaxItemBytes > 0 && e.size > p.opts.MaxItemBytes:
		return preprocess.Reject(preprocess.ReasonTooLarge, "item %q is %d bytes, over the pipeline's limit of %d bytes", e.id, e.size, p.opts.MaxItemBytes)
	case int(e.msg.Delivered) > p.opts.MaxDeliver:
		return fmt.Errorf("%w: item %q was delivered %d times without being settled (a worker may crash on it)", errGiveUp, e.id, e.msg.Delivered)
	}
	return nil
}

// batch groups entries by the batch policy. A redelivered item goes in a
// batch of its own.
func (p *Pipeline) batch(ctx context.Context, in <-chan *entry, out chan<- *work) {
	defer close(out)
	b, _ := batch.NewBatcher[*entry](p.opts.Batch) // validated in New
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	send := func(es []*entry, trig batch.Trigger) bool {
		if len(es) == 0 {
			return true
		}
		// Kept alive from here to settling: while the batch waits to be
		// processed, is processed, and waits for the batches before it to
		// be published (which a slow broker can make longer than AckWait).
		w := &work{entries: es, trigger: trig, closed: time.Now(), stopKeepAlive: p.keepAlive(ctx, es)}
		select {
		case out <- w:
			return true
		case <-ctx.Done():
			w.stopKeepAlive()
			return false
		}
	}
	for {
		var expire <-chan time.Time
		if dl, ok := b.Deadline(); ok {
			timer.Reset(time.Until(dl))
			expire = timer.C
		}
		select {
		case e, ok := <-in:
			if !ok {
				es, trig := b.Flush()
				send(es, trig)
				return
			}
			if e.msg.Delivered > 1 {
				// A redelivered item may be the one that failed its whole
				// batch (a failed publish, a processor error): it goes
				// alone, so it cannot take other items down with it again.
				if es, trig := b.Flush(); !send(es, trig) {
					return
				}
				if !send([]*entry{e}, batch.TriggerRetry) {
					return
				}
				break
			}
			if es, trig, full := b.Add(e, e.size, time.Now()); full {
				if !send(es, trig) {
					return
				}
			}
		case now := <-expire:
			if es, trig, ok := b.Expire(now); ok {
				if !send(es, trig) {
					return
				}
			}
		case <-ctx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// process runs the Processor on up to opts.InflightBatches batches at
// once, each on its own goroutine, and hands every batch on as soon as it
// starts, in the order the batches were formed; the publish stage waits
// for each one's done. It returns when every batch it started has
// finished.
func (p *Pipeline) process(ctx context.Context, in <-chan *work, out chan<- *work) {
	defer close(out)
	var running sync.WaitGroup
	defer running.Wait()
	slots := make(chan struct{}, p.opts.InflightBatches)
	for w := range in {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			w.stopKeepAlive()
			return
		}
		w.done = make(chan struct{})
		running.Add(1)
		go func() {
			defer running.Done()
			p.processOne(ctx, w)
			close(w.done)
			<-slots
		}()
		select {
		case out <- w:
		case <-ctx.Done():
			return
		}
	}
}

// processOne runs the Processor on one batch and records its metrics.
func (p *Pipeline) processOne(ctx context.Context, w *work) {
	p.m.BatchesTotal.WithLabelValues(p.opts.Name, p.device(), string(w.trigger)).Inc()
	p.m.BatchItems.WithLabelValues(p.opts.Name).Observe(float64(len(w.entries)))
	p.observe(metrics.StageQueueWait, w.closed.Sub(w.entries[0].arrived))
	items := make([]preprocess.Item, len(w.entries))
	for i, e := range w.entries {
		items[i] = preprocess.Item{ID: e.id, Data: e.msg.Data}
	}
	start := time.Now()
	w.result, w.err = p.proc.Process(ctx, items)
	p.observe(metrics.StageProcess, time.Since(start))
	if w.result != nil {
		for stage, d := range w.result.Timings {
			p.observe(stage, d)
		}
		p.m.ObserveBatch(p.opts.Name, w.result)
	}
}

// DeviceReporter is a Processor that says which device it runs on now: a
// GPU processor that fell back to the CPU reports "cpu" from then on.
type DeviceReporter interface {
	Device() string
}

// device is the metrics label of the device batches run on now.
func (p *Pipeline) device() string {
	if d, ok := p.proc.(DeviceReporter); ok {
		return d.Device()
	}
	return p.opts.Device
}

func (p *Pipeline) observe(stage string, d time.Duration) {
	p.m.StageSeconds.WithLabelValues(p.opts.Name, p.device(), stage).Observe(d.Seconds())
}

// keepAlive sends InProgress for the entries every third of AckWait until
// the returned function is called or ctx ends.
func (p *Pipeline) keepAlive(ctx context.Context, es []*entry) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(p.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				for _, e := range es {
					_ = e.msg.InProgress()
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); <-finished }
}
