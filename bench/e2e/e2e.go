package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/bench"
	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
)

// ErrIncomplete is returned when items published did not all arrive (as
// tensors or dead letters) before the timeout.
var ErrIncomplete = errors.New("not every item arrived")

// Options configure Run. Zero values take the defaults written beside them.
type Options struct {
	// Config holds the pipeline to run (its batch policy, spec, threads
	// and device are used); required.
	Config   *config.Config
	Pipeline string // name of the pipeline in Config; required
	// Conn reaches an external server; an empty URL starts an embedded
	// server with its store in a temporary directory.
	Conn    queue.ConnOptions
	Workers int               // in-process services sharing the consumer; default 1
	Items   int               // items published per phase; default 2000
	Inputs  []preprocess.Item // payloads, cycled; required
	Rate    float64           // items/s of the paced phase; 0: half the full-speed rate
	Timeout time.Duration     // bound on each phase's wait for arrivals; default 2m
	Logger  *slog.Logger      // default: discard
	// StageSeconds is the time the stage measurement runs (after 0.5s of
	// warm-up); default 3s.
	StageSeconds float64
	// AroundFull, when set, is called with true just before the
	// full-speed phase starts publishing and with false when it ends (to
	// profile that phase alone).
	AroundFull func(starting bool)
	// SkipPaced skips the paced phase.
	SkipPaced bool
}

// Result is one e2e run.
type Result struct {
	Pipeline string `json:"pipeline"`
	Device   string `json:"device"`
	Workers  int    `json:"workers"`
	Items    int    `json:"items"`       // per phase
	Payload  int64  `json:"payload_avg"` // mean raw item size in bytes
	Server   string `json:"server"`      // "embedded" or the URL's host

	// StageItemsPerS is the preprocessing stage alone at the pipeline's
	// batch size, counting failed (bad) items as the service does: the
	// larger of StageRuns, measured before the broker ceiling and right
	// after the full-speed phase (the larger, so that other load on a
	// shared machine cannot flatter the fraction).
	StageItemsPerS float64   `json:"stage_items_per_s"`
	StageRuns      []float64 `json:"stage_runs_items_per_s"`
	StageBatch     int       `json:"stage_batch"`
	// Broker ceiling: publish-only and consume-and-ack-only rates with the
	// same payloads and no preprocessing; the ceiling is the smaller.
	BrokerPublishPerS float64 `json:"broker_publish_per_s"`
	BrokerConsumePerS float64 `json:"broker_consume_per_s"`
	BrokerCeilingPerS float64 `json:"broker_ceiling_per_s"`
	// BrokerSharedPerS is 1/(1/publish + 1/consume): the rate when the
	// publishing and the consuming share the same cores, as they do when
	// server, publisher and workers run on one small machine. Reported for
	// reading the fraction; the bound is the min(...).
	BrokerSharedPerS float64 `json:"broker_shared_cores_per_s"`
	// BrokerOutputPerS is the publish-only rate, in items/s, of messages
	// the size of the tensor messages the full-speed phase produced (they
	// are far larger than the inputs: float32 pixels, int64 token ids), and
	// BrokerAllPerS is 1/(1/publish + 1/consume + 1/output): all the
	// broker's work per item on shared cores. Both are diagnostics.
	BrokerOutputPerS float64 `json:"broker_output_publish_per_s"`
	BrokerAllPerS    float64 `json:"broker_all_work_shared_cores_per_s"`

	Full  Phase  `json:"full_speed"`
	Paced *Phase `json:"paced,omitempty"`

	// Bound is min(stage, broker ceiling); Fraction is Full.ItemsPerS / Bound.
	BoundPerS float64 `json:"bound_per_s"`
	Fraction  float64 `json:"fraction_of_bound"`
}

// Phase is one publishing phase through the service.
type Phase struct {
	RatePerS    float64       `json:"target_rate_per_s,omitempty"` // 0: full speed
	ItemsPerS   float64       `json:"items_per_s"`                 // items over first publish → last arrival
	Tensors     int           `json:"tensors"`                     // items that arrived as tensor rows
	DeadLetters int           `json:"dead_letters"`                // items that arrived as dead letters
	Latency     bench.Latency `json:"latency"`                     // publish → arrival, per item
	Seconds     float64       `json:"seconds"`
	PublishPerS float64       `json:"publish_per_s"` // rate the publisher achieved
	OutputMsgs  int           `json:"output_messages"`
	OutputBytes int64         `json:"output_bytes"`
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Items <= 0 {
		o.Items = 2000
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.StageSeconds <= 0 {
		o.StageSeconds = 3
	}
}

// Run measures the stage, the broker ceiling and the service, in that order.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if o.Config == nil || len(o.Inputs) == 0 {
		return nil, errors.New("e2e: a configuration and inputs are required")
	}
	src, ok := o.Config.Pipeline(o.Pipeline)
	if !ok {
		return nil, fmt.Errorf("e2e: pipeline %q is not in the configuration", o.Pipeline)
	}
	device, err := service.ResolveDevice(o.Config.Device)
	if err != nil {
		return nil, err
	}
	runID := strconv.FormatUint(rand.Uint64()%1e8, 36)
	p := renamed(*src, runID)
	res := &Result{Pipeline: p.Name, Device: device, Workers: o.Workers, Items: o.Items, Payload: bench.TotalBytes(o.Inputs) / int64(len(o.Inputs))}

	// 1. The stage alone (again after the full-speed phase: see Result).
	before, err := stageRate(ctx, p, device, o)
	if err != nil {
		return nil, err
	}
	res.StageRuns = []float64{before}
	res.StageBatch = p.Batch.MaxItems

	// The server.
	connOpts := o.Conn
	if connOpts.URL == "" {
		dir, err := os.MkdirTemp("", "stoker-bench-e2e-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		srv, err := queue.StartEmbedded(queue.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir})
		if err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		defer srv.Shutdown()
		connOpts.URL = srv.ClientURL()
		res.Server = "embedded"
	} else {
		res.Server = connOpts.URL
	}
	if connOpts.Logger == nil {
		connOpts.Logger = o.Logger
	}
	if connOpts.Name == "" {
		connOpts.Name = "stoker-bench"
	}
	conn, err := queue.Connect(ctx, connOpts)
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	defer conn.Close(context.Background())
	js := conn.JetStream()
	defer func() {
		for _, s := range []string{p.Stream, p.OutputStream, p.DeadLetterStream, ceilingStream(runID), ceilingStream(runID) + "_OUT"} {
			_ = js.DeleteStream(context.Background(), s)
		}
	}()

	// 2. The broker's ceiling.
	if err := brokerCeiling(ctx, conn, runID, o, res); err != nil {
		return nil, err
	}

	// 3. The service.
	cfg := *o.Config
	cfg.NATS = config.NATS{URL: connOpts.URL, Name: "stoker-bench-worker", User: connOpts.User, Password: connOpts.Password,
		Token: connOpts.Token, Creds: connOpts.Creds, NKey: connOpts.NKey,
		TLS: config.TLS{Cert: connOpts.TLSCert, Key: connOpts.TLSKey, CA: connOpts.TLSCA}}
	cfg.Metrics.Addr = ""
	cfg.Pipelines = []config.Pipeline{p}
	stop, err := startWorkers(ctx, &cfg, o)
	if err != nil {
		return nil, err
	}
	defer stop()

	if o.AroundFull != nil {
		o.AroundFull(true)
	}
	res.Full, err = phase(ctx, conn, &p, runID+"f", 0, o)
	if o.AroundFull != nil {
		o.AroundFull(false)
	}
	if err != nil {
		return res, err
	}
	if err := outputCeiling(ctx, conn, runID, o, res); err != nil {
		return res, err
	}
	after, err := stageRate(ctx, p, device, o)
	if err != nil {
		return res, err
	}
	res.StageRuns = append(res.StageRuns, after)
	res.StageItemsPerS = max(before, after)
	res.BoundPerS = min(res.StageItemsPerS, res.BrokerCeilingPerS)
	if res.BoundPerS > 0 {
		res.Fraction = res.Full.ItemsPerS / res.BoundPerS
	}
	if !o.SkipPaced {
		rate := o.Rate
		if rate <= 0 {
			rate = res.Full.ItemsPerS / 2
		}
		paced, err := phase(ctx, conn, &p, runID+"p", rate, o)
		if err != nil {
			return res, err
		}
		res.Paced = &paced
	}
	if err := stop(); err != nil {
		return res, err
	}
	return res, nil
}

// renamed gives the pipeline's subjects, streams and consumer a per-run
// suffix so the run never touches anything that exists.
func renamed(p config.Pipeline, id string) config.Pipeline {
	up := strings.ToUpper(id)
	p.Subjects = []string{"bench." + id + ".raw." + p.Name + ".>"}
	p.Stream = "BENCH_" + up + "_RAW"
	p.Consumer = "stoker-bench-" + id
	p.Output = "bench." + id + ".tensors." + p.Name
	p.OutputStream = "BENCH_" + up + "_TENSORS"
	p.DeadLetter = "bench." + id + ".dlq." + p.Name
	p.DeadLetterStream = "BENCH_" + up + "_DLQ"
	return p
}

func ceilingStream(id string) string { return "BENCH_" + strings.ToUpper(id) + "_CEILING" }

// startWorkers runs o.Workers services and waits until every one is ready.
// stop drains them and waits for them to return (idempotent).
func startWorkers(ctx context.Context, cfg *config.Config, o Options) (stop func() error, err error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var svcs []*service.Service
	errs := make(chan error, o.Workers)
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			for _, s := range svcs {
				s.Drain()
			}
			timer := time.NewTimer(30 * time.Second)
			defer timer.Stop()
			for range svcs {
				select {
				case err := <-errs:
					if err != nil && !errors.Is(err, context.Canceled) && stopErr == nil {
						stopErr = fmt.Errorf("e2e: worker: %w", err)
					}
				case <-timer.C:
					cancel() // hard stop; the remaining Runs return promptly
					timer.Reset(30 * time.Second)
				}
			}
			cancel()
		})
		return stopErr
	}
	for i := range o.Workers {
		svc, err := service.New(cfg, service.Options{Logger: o.Logger.With("worker", i)})
		if err != nil {
			stop()
			return nil, fmt.Errorf("e2e: worker %d: %w", i, err)
		}
		svcs = append(svcs, svc)
		go func() { errs <- svc.Run(runCtx) }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range svcs {
		for s.Ready() != nil {
			if time.Now().After(deadline) {
				err := s.Ready()
				stop()
				return nil, fmt.Errorf("e2e: workers not ready after 30s: %w", err)
			}
			select {
			case <-ctx.Done():
				stop()
				return nil, ctx.Err()
			case err := <-errs:
				stop()
				return nil, fmt.Errorf("e2e: worker stopped while starting: %w", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return stop, nil
}

// tracker records publish and arrival times by item id.
type tracker struct {
	mu        sync.Mutex
	published map[string]time.Time
	arrived   map[string]time.Time
	tensors   int
	dead      int
	msgs      int
	bytes     int64
	parseErr  error
	done      chan struct{}
	want      int
}

func (t *tracker) arrive(ids []string, dead bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if _, seen := t.arrived[id]; seen {
			continue // a redelivered batch
		}
		t.arrived[id] = now
		if dead {
			t.dead++
		} else {
			t.tensors++
		}
	}
	if len(t.arrived) >= t.want {
		select {
		case <-t.done:
		default:
			close(t.done)
		}
	}
}

// phase publishes o.Items items (at rate, or at full speed when 0) and
// waits until every one arrived as a tensor row or a dead letter.
func phase(ctx context.Context, conn *queue.Conn, p *config.Pipeline, tag string, rate float64, o Options) (Phase, error) {
	t := &tracker{published: make(map[string]time.Time, o.Items), arrived: make(map[string]time.Time, o.Items), done: make(chan struct{}), want: o.Items}
	nc := conn.NATS()
	out, err := nc.Subscribe(p.Output, func(m *nats.Msg) {
		now := time.Now()
		ids, err := tensorIDs(m.Data)
		t.mu.Lock()
		t.msgs++
		t.bytes += int64(len(m.Data))
		if err != nil && t.parseErr == nil {
			t.parseErr = err
		}
		t.mu.Unlock()
		t.arrive(ids, false, now)
	})
	if err != nil {
		return Phase{}, fmt.Errorf("e2e: subscribing to %s: %w", p.Output, err)
	}
	defer out.Unsubscribe()
	dlq, err := nc.Subscribe(p.DeadLetter, func(m *nats.Msg) {
		t.arrive([]string{m.Header.Get(worker.HeaderItemID)}, true, time.Now())
	})
	if err != nil {
		return Phase{}, fmt.Errorf("e2e: subscribing to %s: %w", p.DeadLetter, err)
	}
	defer dlq.Unsubscribe()
	for _, s := range []*nats.Subscription{out, dlq} {
		// Tensor messages are large; let the subscription buffer plenty.
		_ = s.SetPendingLimits(-1, -1)
	}
	if err := nc.Flush(); err != nil {
		return Phase{}, err
	}

	subject := strings.TrimSuffix(p.Subjects[0], ">") + "item"
	start := time.Now()
	pub := &windowed{conn: conn}
	for k := range o.Items {
		if rate > 0 {
			due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return Phase{}, ctx.Err()
				case <-time.After(d):
				}
			}
		}
		id := tag + "-" + strconv.Itoa(k)
		hdr := nats.Header{}
		hdr.Set(jetstream.MsgIDHeader, id)
		t.mu.Lock()
		t.published[id] = time.Now()
		t.mu.Unlock()
		if err := pub.publish(ctx, subject, o.Inputs[k%len(o.Inputs)].Data, hdr); err != nil {
			return Phase{}, fmt.Errorf("e2e: %w", err)
		}
	}
	if err := pub.wait(ctx); err != nil {
		return Phase{}, fmt.Errorf("e2e: %w", err)
	}
	pubDone := time.Since(start)

	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-ctx.Done():
		return Phase{}, ctx.Err()
	case <-timer.C:
		t.mu.Lock()
		n := len(t.arrived)
		t.mu.Unlock()
		return Phase{}, fmt.Errorf("e2e: %w: %d of %d after %v", ErrIncomplete, n, o.Items, o.Timeout)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parseErr != nil {
		return Phase{}, fmt.Errorf("e2e: reading a tensor message: %w", t.parseErr)
	}
	var last time.Time
	lat := make([]time.Duration, 0, len(t.arrived))
	for id, at := range t.arrived {
		pub, ok := t.published[id]
		if !ok {
			return Phase{}, fmt.Errorf("e2e: a message named item %q, which this phase did not publish", id)
		}
		lat = append(lat, at.Sub(pub))
		if at.After(last) {
			last = at
		}
	}
	el := last.Sub(start)
	return Phase{
		RatePerS: rate, ItemsPerS: float64(o.Items) / el.Seconds(), Tensors: t.tensors, DeadLetters: t.dead,
		Latency: bench.LatencyOf(lat), Seconds: el.Seconds(), PublishPerS: float64(o.Items) / pubDone.Seconds(),
		OutputMsgs: t.msgs, OutputBytes: t.bytes,
	}, nil
}

// tensorIDs reads the item ids from a safetensors message's header
// (__metadata__.ids, a JSON list) without decoding the tensors.
func tensorIDs(data []byte) ([]string, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("tensor message of %d bytes: shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("tensor message of %d bytes: header length %d runs past the end", len(data), n)
	}
	var hdr struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(data[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("tensor message header: %w", err)
	}
	var ids []string
	if err := json.Unmarshal([]byte(hdr.Meta["ids"]), &ids); err != nil {
		return nil, fmt.Errorf("tensor message metadata ids %q: %w", hdr.Meta["ids"], err)
	}
	return ids, nil
}

// brokerCeiling publishes o.Items payloads to a scratch stream as fast as
// it can, then consumes and acks them all, with no preprocessing.
func brokerCeiling(ctx context.Context, conn *queue.Conn, id string, o Options, res *Result) error {
	name := ceilingStream(id)
	subject := "bench." + id + ".ceiling"
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: name, Subjects: []string{subject}}); err != nil {
		return fmt.Errorf("e2e: broker ceiling: %w", err)
	}
	start := time.Now()
	pub := &windowed{conn: conn}
	for k := range o.Items {
		hdr := nats.Header{}
		hdr.Set(jetstream.MsgIDHeader, id+"-c-"+strconv.Itoa(k))
		if err := pub.publish(ctx, subject, o.Inputs[k%len(o.Inputs)].Data, hdr); err != nil {
			return fmt.Errorf("e2e: broker ceiling: %w", err)
		}
	}
	if err := pub.wait(ctx); err != nil {
		return fmt.Errorf("e2e: broker ceiling: %w", err)
	}
	res.BrokerPublishPerS = float64(o.Items) / time.Since(start).Seconds()

	src, err := queue.NewSource(ctx, conn, queue.SourceOptions{Stream: name, Consumer: "ceiling-" + id, FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("e2e: broker ceiling: %w", err)
	}
	defer src.Stop()
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start = time.Now()
	for k := range o.Items {
		m, err := src.Next(cctx)
		if err != nil {
			return fmt.Errorf("e2e: broker ceiling: consumed %d of %d: %w", k, o.Items, err)
		}
		if err := m.AckNow(); err != nil {
			return fmt.Errorf("e2e: broker ceiling: %w", err)
		}
	}
	res.BrokerConsumePerS = float64(o.Items) / time.Since(start).Seconds()
	res.BrokerCeilingPerS = min(res.BrokerPublishPerS, res.BrokerConsumePerS)
	res.BrokerSharedPerS = 1 / (1/res.BrokerPublishPerS + 1/res.BrokerConsumePerS)
	return nil
}

// stageRate measures the pipeline's processor alone at its batch size, in
// settled items (rows and failed items) per second.
func stageRate(ctx context.Context, p config.Pipeline, device string, o Options) (float64, error) {
	stage, err := bench.Run(ctx, o.Inputs, func(dev string, threads int) (bench.Processor, error) {
		cp := p
		cp.Threads = threads
		return service.NewProcessor(&cp, dev)
	}, bench.Options{
		Pipeline: p.Name, Devices: []string{device}, Threads: p.Threads, Batches: []int{p.Batch.MaxItems},
		Duration: time.Duration(o.StageSeconds * float64(time.Second)), Warmup: 500 * time.Millisecond, Windows: 3,
	})
	if err != nil {
		return 0, fmt.Errorf("e2e: stage measurement: %w", err)
	}
	st := stage[0]
	if st.Missing != "" {
		return 0, fmt.Errorf("e2e: stage measurement: %s", st.Missing)
	}
	if st.Items == 0 {
		return 0, fmt.Errorf("e2e: stage measurement: no item of the inputs could be processed")
	}
	return st.ItemsPerS * float64(st.Items+st.Failed) / float64(st.Items), nil
}

// publishWindow and publishWindowBytes bound the publishes awaiting
// acknowledgement: below the connection's PublishAsyncMaxPending (256), so
// a slow server slows the publisher down instead of failing it with "too
// many outstanding", and below what the server's ingest queue takes
// before it drops messages (large tensor messages).
const (
	publishWindow      = 128
	publishWindowBytes = 32 << 20
	// ackTimeout bounds the wait for one acknowledgement: a message the
	// server dropped is never acknowledged.
	ackTimeout = 30 * time.Second
)

// windowed publishes asynchronously with a bounded window pending.
type windowed struct {
	conn    *queue.Conn
	pending []*queue.Pending
	sizes   []int
	bytes   int
}

func (w *windowed) waitOldest(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if _, err := w.pending[0].Wait(actx); err != nil {
		return err
	}
	w.bytes -= w.sizes[0]
	w.pending, w.sizes = w.pending[1:], w.sizes[1:]
	return nil
}

func (w *windowed) publish(ctx context.Context, subject string, data []byte, hdr nats.Header) error {
	for len(w.pending) > 0 && (len(w.pending) >= publishWindow || w.bytes+len(data) > publishWindowBytes) {
		if err := w.waitOldest(ctx); err != nil {
			return err
		}
	}
	pa, err := w.conn.PublishAsync(subject, data, hdr)
	if err != nil {
		return err
	}
	w.pending = append(w.pending, pa)
	w.sizes = append(w.sizes, len(data))
	w.bytes += len(data)
	return nil
}

// wait waits for every pending publish.
func (w *windowed) wait(ctx context.Context) error {
	for len(w.pending) > 0 {
		if err := w.waitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// outputCeiling publishes, as fast as it can, as many messages as the
// full-speed phase produced, each of their mean size, and converts the rate
// to items/s.
func outputCeiling(ctx context.Context, conn *queue.Conn, id string, o Options, res *Result) error {
	msgs := res.Full.OutputMsgs
	if msgs == 0 {
		return nil
	}
	size := int(res.Full.OutputBytes / int64(msgs))
	name := ceilingStream(id) + "_OUT"
	subject := "bench." + id + ".ceiling-out"
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: name, Subjects: []string{subject}}); err != nil {
		return fmt.Errorf("e2e: output ceiling: %w", err)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	start := time.Now()
	pub := &windowed{conn: conn}
	for k := range msgs {
		hdr := nats.Header{}
		hdr.Set(jetstream.MsgIDHeader, id+"-o-"+strconv.Itoa(k))
		if err := pub.publish(ctx, subject, payload, hdr); err != nil {
			return fmt.Errorf("e2e: output ceiling: %w", err)
		}
	}
	if err := pub.wait(ctx); err != nil {
		return fmt.Errorf("e2e: output ceiling: %w", err)
	}
	res.BrokerOutputPerS = float64(o.Items) / time.Since(start).Seconds()
	res.BrokerAllPerS = 1 / (1/res.BrokerPublishPerS + 1/res.BrokerConsumePerS + 1/res.BrokerOutputPerS)
	return nil
}
