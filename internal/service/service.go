package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/httpapi"
	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess/text"
	"github.com/stoker-ml/stoker/queue"
)

// Options are what the command line adds to the configuration.
type Options struct {
	Logger *slog.Logger // default slog.Default()
	// Registry receives the metrics; default a new registry with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// OnEmbedded is called with the embedded server's client URL when one
	// is started.
	OnEmbedded func(url string)
}

// Service is a running set of pipelines.
type Service struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger
	reg  *prometheus.Registry
	m    *metrics.Metrics

	mu        sync.Mutex
	embedded  *queue.Embedded
	conn      *queue.Conn
	pipelines []*worker.Pipeline
	sources   []*queue.Source
	procs     []Processor
	http      *httpapi.Server
	running   map[string]bool
	device    string

	// drained is closed by the first Drain: pipelines set up after it are
	// drained as soon as they exist, and setup stops retrying.
	drained   chan struct{}
	drainOnce sync.Once
}

// New checks the configuration and prepares a service; Run starts it.
func New(cfg *config.Config, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	device, err := ResolveDevice(cfg.Device)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, opts: opts, log: opts.Logger, reg: opts.Registry,
		m: metrics.New(opts.Registry), running: map[string]bool{}, device: device,
		drained: make(chan struct{}),
	}, nil
}

// Device is the device the pipelines run on (cpu or cuda).
func (s *Service) Device() string { return s.device }

// URL is the broker URL in use (the embedded server's when one runs); empty
// before Run has connected.
func (s *Service) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return ""
	}
	return s.conn.NATS().ConnectedUrlRedacted()
}

// MetricsAddr is the bound metrics address, or "" when disabled or not started.
func (s *Service) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// Run connects, creates what is missing, and runs every pipeline until they
// are drained (nil) or ctx is cancelled (hard stop). Resources are released
// before it returns.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	if err := s.connect(ctx); errors.Is(err, errDrainedDuringSetup) {
		return nil // drained before there was anything to run
	} else if err != nil {
		return err
	}
	if err := s.startHTTP(); err != nil {
		return err
	}
	for i := range s.cfg.Pipelines {
		err := s.setup(ctx, &s.cfg.Pipelines[i])
		if errors.Is(err, errDrainedDuringSetup) {
			break // run what exists: drained, it hands back what it fetched
		}
		if err != nil {
			return err
		}
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	var lagWG sync.WaitGroup
	lagWG.Add(1)
	go func() { defer lagWG.Done(); s.watchLag(lagCtx) }()
	defer func() { stopLag(); lagWG.Wait() }()

	errs := make(chan error, len(s.pipelines))
	for i, p := range s.pipelines {
		name := s.cfg.Pipelines[i].Name
		go func() {
			s.setRunning(name, true)
			err := p.Run(ctx)
			s.setRunning(name, false)
			if err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("pipeline %s: %w", name, err)
			}
			errs <- err
		}()
	}
	var first error
	for range s.pipelines {
		if err := <-errs; err != nil && first == nil {
			first = err
			if !errors.Is(err, context.Canceled) {
				// One pipeline failing stops the others softly.
				s.Drain()
			}
		}
	}
	return first
}

// Drain stops every pipeline softly (see worker.Pipeline.Drain), those
// still being set up included: a drain during setup stops its retries and
// drains each pipeline that exists.
func (s *Service) Drain() {
	s.drainOnce.Do(func() { close(s.drained) })
	s.mu.Lock()
	ps := append([]*worker.Pipeline(nil), s.pipelines...)
	s.mu.Unlock()
	for _, p := range ps {
		p.Drain()
	}
}

// errDrainedDuringSetup ends setup when Drain was called.
var errDrainedDuringSetup = errors.New("drained while setting up")

func (s *Service) draining() bool {
	select {
	case <-s.drained:
		return true
	default:
		return false
	}
}

func (s *Service) setRunning(name string, v bool) {
	s.mu.Lock()
	s.running[name] = v
	s.mu.Unlock()
}

// Ready is the /readyz check: nil once connected, every pipeline runs, and
// no consumer's pulls have failed for queue.SourceOptions.StallAfter.
func (s *Service) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || !s.conn.Connected() {
		return errors.New("not connected to NATS")
	}
	var down []string
	for _, p := range s.cfg.Pipelines {
		if !s.running[p.Name] {
			down = append(down, p.Name)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("pipelines not running: %s", strings.Join(down, ", "))
	}
	for i, src := range s.sources {
		if err := src.Err(); err != nil {
			return fmt.Errorf("pipeline %s: %w", s.cfg.Pipelines[i].Name, err)
		}
	}
	return nil
}

func (s *Service) connect(ctx context.Context) error {
	n := s.cfg.NATS
	url := n.URL
	if url == "" {
		e, err := queue.StartEmbedded(queue.EmbeddedOptions{
			Listen: s.cfg.Embedded.Listen, DataDir: s.cfg.Embedded.DataDir,
			User: n.User, Password: n.Password, Token: n.Token, Logger: s.log,
		})
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.embedded = e
		s.mu.Unlock()
		url = e.ClientURL()
		s.log.Info("embedded NATS server started; other processes join with --nats "+url, "url", url, "data_dir", s.cfg.Embedded.DataDir)
		if s.opts.OnEmbedded != nil {
			s.opts.OnEmbedded(url)
		}
	}
	// A broker that is not reachable yet (started at the same time, as
	// with kubectl apply) is retried like the setup's broker calls.
	var c *queue.Conn
	err := s.retry(ctx, "", "connection", func() (err error) {
		c, err = queue.Connect(ctx, queue.ConnOptions{
			URL: url, Name: n.Name, Creds: n.Creds, User: n.User, Password: n.Password, Token: n.Token,
			NKey: n.NKey, TLSCert: n.TLS.Cert, TLSKey: n.TLS.Key, TLSCA: n.TLS.CA, Logger: s.log,
		})
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	return nil
}

func (s *Service) startHTTP() error {
	if s.cfg.Metrics.Addr == "" {
		return nil
	}
	h, err := httpapi.Listen(s.cfg.Metrics.Addr, s.reg, s.Ready)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.http = h
	s.mu.Unlock()
	go func() {
		if err := h.Serve(); err != nil {
			s.log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	s.log.Info("metrics endpoint listening", "addr", h.Addr())
	return nil
}

// setup creates the pipeline's streams and consumer and its worker.
func (s *Service) setup(ctx context.Context, p *config.Pipeline) error {
	ss := p.Streams
	for _, st := range []queue.StreamSpec{
		// A full input stream refuses publishes: unprocessed items are
		// never dropped to make room.
		{Name: p.Stream, Subjects: p.Subjects, Replicas: ss.Replicas, MaxAge: ss.InputMaxAge, MaxBytes: ss.InputMaxBytes,
			RefuseWhenFull: true, WorkQueue: ss.InputRetention == config.RetentionWorkQueue},
		{Name: p.OutputStream, Subjects: []string{p.Output}, Replicas: ss.Replicas, MaxAge: ss.OutputMaxAge, MaxBytes: ss.OutputMaxBytes},
		{Name: p.DeadLetterStream, Subjects: []string{p.DeadLetter}, Replicas: ss.Replicas, MaxAge: ss.OutputMaxAge, MaxBytes: ss.OutputMaxBytes},
	} {
		var created bool
		err := s.retry(ctx, p.Name, "stream "+st.Name, func() (err error) {
			created, err = s.conn.EnsureStream(ctx, st)
			return err
		})
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
		if created {
			s.log.Info("stream created", "pipeline", p.Name, "stream", st.Name, "subjects", st.Subjects)
		}
	}
	proc, err := newProcessor(p, s.device, s.log)
	if err != nil {
		return err
	}
	if p.Image != nil {
		s.m.SetImageNormalization(p.Name, p.Image.Mean, p.Image.Std)
	}
	if tp, ok := unwrap(proc).(interface{ Tokenizer() *text.Tokenizer }); ok {
		if id, ok := tp.Tokenizer().UnknownID(); ok {
			s.m.SetUnknownTokenID(p.Name, int(id))
		}
	}
	// The device the pipeline runs on: the service's, unless its processor
	// runs on the CPU anyway (a tokenizer the GPU kernels do not run).
	device := s.device
	if d, ok := proc.(worker.DeviceReporter); ok {
		device = d.Device()
	}
	if device == DeviceCUDA && s.cfg.CPUFallback {
		proc = withCPUFallback(proc, func() (Processor, error) { return NewProcessor(p, DeviceCPU) }, s.log.With("pipeline", p.Name))
	}
	s.procs = append(s.procs, proc)
	var src *queue.Source
	err = s.retry(ctx, p.Name, "consumer "+p.Consumer, func() (err error) {
		src, err = queue.NewSource(ctx, s.conn, queue.SourceOptions{
			Stream: p.Stream, Consumer: p.Consumer, FilterSubjects: p.Subjects,
			AckWait: p.AckWait, MaxAckPending: p.MaxAckPending,
			// The server delivers without limit; the worker counts deliveries
			// and dead-letters an item when p.MaxDeliver are used up, so an
			// item whose last delivery is lost is not silently given up.
			MaxDeliver:     -1,
			BufferMessages: 2 * p.Batch.MaxItems,
			// Held before the worker's in-flight budget counts it.
			BufferBytes: int(min(p.MaxInflightBytes/4, 64<<20)),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.Name, err)
	}
	s.mu.Lock()
	s.sources = append(s.sources, src)
	s.mu.Unlock()
	w, err := worker.New(worker.Options{
		Name: p.Name, Device: device, Output: p.Output, DeadLetter: p.DeadLetter, OutputMode: p.OutputMode,
		Batch: p.Batch, MaxItemBytes: p.Limits.MaxBytes, MaxInflightBytes: p.MaxInflightBytes,
		MaxDeliver: p.MaxDeliver, RetryBackoff: p.RetryBackoff, AckWait: p.AckWait,
		InflightBatches: inflightBatches(p, device),
		MaxPayload:      s.conn.MaxPayload(), Logger: s.log,
	}, src, s.conn, proc, s.m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pipelines = append(s.pipelines, w)
	s.mu.Unlock()
	if s.draining() {
		// Drain copied the pipelines before this one was added, or after:
		// either way it is drained once.
		w.Drain()
	}
	s.log.Info("pipeline ready", "pipeline", p.Name, "device", device, "subjects", p.Subjects, "output", p.Output, "dead_letter", p.DeadLetter)
	return nil
}

// setupPatience is how long setup retries a broker call that failed
// transiently (replicas starting together, a leader being elected, a server
// restarting) before the worker gives up and exits.
const setupPatience = time.Minute

// inflightBatches resolves a pipeline's inflight_batches: 0 means 2 on a
// GPU, where decoding the next batch on the CPU overlaps the GPU's work on
// this one, and 1 on the CPU, whose threads one batch already keeps busy.
func inflightBatches(p *config.Pipeline, device string) int {
	switch {
	case p.InflightBatches > 0:
		return p.InflightBatches
	case device == DeviceCUDA:
		return 2
	}
	return 1
}

// retry calls f until it succeeds, fails for good, or setupPatience has
// passed since the first failure.
func (s *Service) retry(ctx context.Context, pipeline, what string, f func() error) error {
	var deadline time.Time
	wait := 100 * time.Millisecond
	for {
		if s.draining() {
			return errDrainedDuringSetup
		}
		err := f()
		if err == nil || !queue.Transient(err) || ctx.Err() != nil {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(setupPatience)
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (still failing after %v)", err, setupPatience)
		}
		s.log.Warn("broker not answering; retrying", "pipeline", pipeline, "setting_up", what, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.drained:
			return errDrainedDuringSetup
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// watchLag exports each consumer's pending and ack-pending counts, and how
// long its pulls have been failing.
func (s *Service) watchLag(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for i, src := range s.sources {
			name := s.cfg.Pipelines[i].Name
			s.m.PullFailing.WithLabelValues(name).Set(src.FailingFor().Seconds())
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			pending, ackPending, err := src.Pending(qctx)
			cancel()
			if err == nil {
				s.m.ConsumerPending.WithLabelValues(name).Set(float64(pending))
				s.m.ConsumerAckPend.WithLabelValues(name).Set(float64(ackPending))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) close() {
	for _, src := range s.sources {
		src.Stop()
	}
	for _, p := range s.procs {
		if err := p.Close(); err != nil {
			s.log.Warn("closing processor", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	h, c, e := s.http, s.conn, s.embedded
	s.mu.Unlock()
	if h != nil {
		_ = h.Shutdown(ctx)
	}
	if c != nil {
		_ = c.NATS().Flush()
		c.Close(ctx)
	}
	if e != nil {
		e.Shutdown()
	}
}
