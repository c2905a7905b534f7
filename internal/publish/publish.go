package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/queue"
)

// MetaHeaderPrefix starts the header name of every Record.Meta entry.
const MetaHeaderPrefix = "Stoker-Meta-"

// Errors Run returns; callers branch on them with errors.Is.
var (
	// ErrNoStream: no stream captures the subject. The publisher never
	// creates streams; `stoker serve` (or the user) does.
	ErrNoStream = errors.New("no stream captures subject")
	// ErrFailed: some records or inputs failed; the error says how many.
	ErrFailed = errors.New("publish failed")
)

// Options configure Run.
type Options struct {
	// Subject every record is published to; required, no wildcards.
	Subject string
	// IDPrefix is prepended to every record id (Nats-Msg-Id), to keep the
	// ids of different datasets apart; default none.
	IDPrefix string
	// Readers is how many inputs are read at once; default 2.
	Readers int
	// MaxPending bounds the records published but not yet acknowledged;
	// default 256. The connection's own bound
	// (queue.ConnOptions.PublishAsyncMaxPending) should be at least this.
	MaxPending int
	// Resume skips records whose id the stream already holds on Subject
	// (see LoadIDs for how and at what cost).
	Resume bool
	// Progress, when not nil, receives a progress line every
	// ProgressInterval (a terminal is expected: the line is redrawn with
	// "\r").
	Progress io.Writer
	// ProgressInterval between progress lines; default 200ms.
	ProgressInterval time.Duration
	// TotalBytes, when positive, is the input size the progress bar fills.
	TotalBytes int64
	// Logger receives one line per failed or skipped record; default
	// slog.Default(). Failures past MaxLogged are only counted.
	Logger *slog.Logger
	// MaxLogged bounds the failures and skips logged one by one; default 20.
	MaxLogged int
	// AckTimeout is how long a publish may wait for its acknowledgement
	// before it is counted as failed; default 30s. (A message in flight when
	// its stream is deleted, for one, is never answered.)
	AckTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Readers <= 0 {
		o.Readers = 2
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 256
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxLogged <= 0 {
		o.MaxLogged = 20
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
}

// Stats count what a run did.
type Stats struct {
	Items        int64 // records the stream acknowledged (new and duplicate)
	Duplicates   int64 // of Items, those the stream already had (same Nats-Msg-Id in its window)
	Bytes        int64 // payload bytes of Items
	Resumed      int64 // records skipped by Resume
	Skipped      int64 // records without a payload (ErrNoPayload)
	Corrupt      int64 // records that could not be read (ErrCorrupt, ErrTooLarge)
	Failed       int64 // publishes that failed
	InputsFailed int64 // inputs that could not be opened or read to the end
	InputBytes   int64 // bytes read from the inputs
	Elapsed      time.Duration
}

// Failures is the number of things that went wrong.
func (s Stats) Failures() int64 { return s.Corrupt + s.Failed + s.InputsFailed }

// String is the final summary line.
func (s Stats) String() string {
	secs := s.Elapsed.Seconds()
	rate, mbs := 0.0, 0.0
	if secs > 0 {
		rate = float64(s.Items) / secs
		mbs = float64(s.Bytes) / secs / 1e6
	}
	return fmt.Sprintf("published %d items (%d duplicates), %s in %.2fs: %.0f items/s, %.1f MB/s; %d resumed, %d skipped, %d corrupt, %d failed, %d inputs failed",
		s.Items, s.Duplicates, humanBytes(s.Bytes), secs, rate, mbs, s.Resumed, s.Skipped, s.Corrupt, s.Failed, s.InputsFailed)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// counters are Stats updated by several goroutines.
type counters struct {
	items, dups, bytes, resumed, skipped, corrupt, failed, inputsFailed, inputBytes atomic.Int64
	logged                                                                          atomic.Int64
}

func (c *counters) snapshot(elapsed time.Duration) Stats {
	return Stats{
		Items: c.items.Load(), Duplicates: c.dups.Load(), Bytes: c.bytes.Load(),
		Resumed: c.resumed.Load(), Skipped: c.skipped.Load(), Corrupt: c.corrupt.Load(),
		Failed: c.failed.Load(), InputsFailed: c.inputsFailed.Load(), InputBytes: c.inputBytes.Load(),
		Elapsed: elapsed,
	}
}

// Run publishes every record of the inputs named by paths to o.Subject and
// returns what happened. It fails fast with ErrNoStream when no stream
// captures the subject; otherwise per-record and per-input failures are
// logged, counted, and reported at the end as an error wrapping ErrFailed.
// Cancelling ctx stops reading; records already published are still waited
// for (at most 10 seconds).
func Run(ctx context.Context, conn *queue.Conn, paths []string, ro ReadOptions, o Options) (Stats, error) {
	o.setDefaults()
	start := time.Now()
	if err := queue.ValidSubject(o.Subject, false); err != nil {
		return Stats{}, err
	}
	for _, p := range paths { // a mistyped path fails before anything is published
		if p != "-" {
			if _, err := os.Stat(p); err != nil {
				return Stats{}, err
			}
		}
	}
	var c counters
	p := &publisher{conn: conn, o: o, c: &c, maxPayload: conn.MaxPayload()}

	// Reading starts at once, so the first records are ready when the
	// stream has been found; nothing is published before that.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	inputs := make(chan Input, 64)
	records := make(chan Record, 64)
	var expandErr error
	var wg sync.WaitGroup
	wg.Go(func() { expandErr = Expand(readCtx, paths, ro, inputs) })
	var readers sync.WaitGroup
	for range o.Readers {
		readers.Go(func() { p.readInputs(readCtx, inputs, records, ro) })
	}
	wg.Go(func() { readers.Wait(); close(records) })
	abort := func(err error) (Stats, error) {
		stopReading()
		for rec := range records {
			rec.Release()
		}
		wg.Wait()
		return Stats{}, err
	}

	stream, err := StreamFor(ctx, conn, o.Subject)
	if err != nil {
		return abort(err)
	}
	if o.Resume {
		if p.seen, err = LoadIDs(ctx, conn, stream, o.Subject); err != nil {
			return abort(err)
		}
	}

	var progressDone chan struct{}
	stopProgress := func() {}
	if o.Progress != nil {
		progressDone = make(chan struct{})
		stop := make(chan struct{})
		wg.Go(func() {
			defer close(progressDone)
			progress(o.Progress, o.ProgressInterval, o.TotalBytes, &c, start, stop)
		})
		stopProgress = func() { close(stop); <-progressDone }
	}

	pubErr := p.publishAll(ctx, records)
	stopReading()
	for rec := range records { // whatever is left when publishing stopped early
		rec.Release()
	}
	stopProgress()
	wg.Wait()
	stats := c.snapshot(time.Since(start))
	switch {
	case pubErr != nil:
		return stats, pubErr
	case expandErr != nil && !errors.Is(expandErr, context.Canceled):
		return stats, expandErr
	case ctx.Err() != nil:
		return stats, ctx.Err()
	case stats.Failures() > 0:
		return stats, fmt.Errorf("%w: %d corrupt records, %d failed publishes, %d failed inputs", ErrFailed, stats.Corrupt, stats.Failed, stats.InputsFailed)
	}
	return stats, nil
}

// StreamFor returns the stream that captures subject, or an error wrapping
// ErrNoStream.
func StreamFor(ctx context.Context, conn *queue.Conn, subject string) (string, error) {
	name, err := conn.JetStream().StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "", fmt.Errorf("%w %s: start stoker serve first or create it", ErrNoStream, subject)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return "", fmt.Errorf("%w %s: the server has no JetStream (start stoker serve first or enable JetStream)", ErrNoStream, subject)
	case err != nil:
		return "", fmt.Errorf("look up the stream for subject %s: %w", subject, err)
	}
	return name, nil
}

type publisher struct {
	conn       *queue.Conn
	o          Options
	c          *counters
	seen       map[string]struct{}
	maxPayload int64
}

// problem logs a failed or skipped record, up to MaxLogged of them.
func (p *publisher) problem(msg string, err error) {
	if n := p.c.logged.Add(1); n <= int64(p.o.MaxLogged) {
		p.o.Logger.Warn(msg, "err", err)
		if n == int64(p.o.MaxLogged) {
			p.o.Logger.Warn("further failures and skips are only counted")
		}
	}
}

// readInputs reads inputs until there are none left or ctx ends.
func (p *publisher) readInputs(ctx context.Context, inputs <-chan Input, out chan<- Record, ro ReadOptions) {
	for in := range inputs {
		if ctx.Err() != nil {
			continue // drain so Expand can finish
		}
		if err := p.readInput(ctx, in, out, ro); err != nil {
			if ctx.Err() != nil {
				continue
			}
			p.c.inputsFailed.Add(1)
			p.problem("input failed", err)
		}
	}
}

func (p *publisher) readInput(ctx context.Context, in Input, out chan<- Record, ro ReadOptions) error {
	r, err := Open(in, ro, &p.c.inputBytes)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, ErrNoPayload):
			p.c.skipped.Add(1)
			p.problem("record skipped", err)
			continue
		case recoverable(err):
			p.c.corrupt.Add(1)
			p.problem("record unreadable", err)
			continue
		case err != nil:
			return err
		}
		select {
		case out <- rec:
		case <-ctx.Done():
			rec.Release()
			return ctx.Err()
		}
	}
}

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	ok   <-chan *jetstream.PubAck
	err  <-chan error
	id   string
	size int
	sent time.Time
	rec  Record // released once acknowledged (nats.go may resend it until then)
}

// publishAll publishes records until the channel closes and settles their
// acknowledgements in order, in the same goroutine: a select either takes
// the next record (while fewer than MaxPending are unacknowledged) or the
// oldest publish's outcome, so no goroutine is woken per message to wait
// for acks. It returns an error only when publishing cannot go on (no
// stream, connection closed).
func (p *publisher) publishAll(ctx context.Context, records <-chan Record) error {
	// Acknowledgements are awaited even after ctx ends, for a bounded time,
	// so what was sent is counted.
	ackCtx, cancelAcks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAcks()
	stopAfterCancel := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(10*time.Second, cancelAcks)
		context.AfterFunc(ackCtx, func() { t.Stop() })
	})
	defer stopAfterCancel()

	waiting := make([]inflight, 0, p.o.MaxPending)
	tick := time.NewTicker(min(time.Second, p.o.AckTimeout/4))
	defer tick.Stop()
	var stop error // why no more records are taken
	in := records
	for in != nil || len(waiting) > 0 {
		if in != nil && (stop != nil || ctx.Err() != nil) {
			in = nil // Run drains and releases what is left
		}
		take := in
		if len(waiting) >= p.o.MaxPending {
			take = nil
		}
		var okCh <-chan *jetstream.PubAck
		var errCh <-chan error
		if len(waiting) > 0 {
			okCh, errCh = waiting[0].ok, waiting[0].err
		}
		select {
		case ack := <-okCh:
			p.settle(waiting[0], ack, nil)
			waiting = waiting[1:]
		case err := <-errCh:
			if p.settle(waiting[0], nil, err) && stop == nil {
				stop = fmt.Errorf("%w %s: start stoker serve first or create it", ErrNoStream, p.o.Subject)
			}
			waiting = waiting[1:]
		case rec, ok := <-take:
			if !ok {
				in = nil
				continue
			}
			f, err := p.send(ctx, rec)
			if err != nil && stop == nil {
				stop = err
			}
			if f.ok != nil {
				waiting = append(waiting, f)
			}
		case now := <-tick.C:
			for len(waiting) > 0 && now.Sub(waiting[0].sent) > p.o.AckTimeout {
				// Not released: without an answer nats.go might still resend it.
				p.c.failed.Add(1)
				p.problem("publish failed", fmt.Errorf("item %q: no acknowledgement within %s", waiting[0].id, p.o.AckTimeout))
				waiting = waiting[1:]
			}
		case <-ackCtx.Done():
			for _, f := range waiting { // mapped payloads stay mapped: nats.go may still resend them
				p.c.failed.Add(1)
				p.problem("publish failed", fmt.Errorf("item %q: no acknowledgement within 10s of the cancel", f.id))
			}
			return stop
		}
	}
	return stop
}

// settle counts one publish's outcome and releases its record; it reports
// whether the error says no stream captures the subject.
func (p *publisher) settle(f inflight, ack *jetstream.PubAck, err error) (noStream bool) {
	f.rec.Release()
	if err != nil {
		p.c.failed.Add(1)
		p.problem("publish failed", fmt.Errorf("item %q: publish to %s: %w", f.id, p.o.Subject, err))
		return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
	}
	p.c.items.Add(1)
	p.c.bytes.Add(int64(f.size))
	if ack.Duplicate {
		p.c.dups.Add(1)
	}
	return false
}

// send publishes one record asynchronously. It returns an inflight with a
// nil ok channel when nothing was sent (resumed, too large, failed), and an
// error only when publishing cannot go on.
func (p *publisher) send(ctx context.Context, rec Record) (inflight, error) {
	id := p.o.IDPrefix + rec.ID
	if p.seen != nil {
		if _, ok := p.seen[id]; ok {
			p.c.resumed.Add(1)
			rec.Release()
			return inflight{}, nil
		}
	}
	if p.maxPayload > 0 && int64(len(rec.Data)) > p.maxPayload {
		rec.Release()
		p.c.failed.Add(1)
		p.problem("publish failed", fmt.Errorf("item %q: %d bytes is over the server's max_payload of %d", id, len(rec.Data), p.maxPayload))
		return inflight{}, nil
	}
	msg := &nats.Msg{Subject: p.o.Subject, Data: rec.Data, Header: make(nats.Header, 1+len(rec.Meta))}
	msg.Header[nats.MsgIdHdr] = []string{id}
	for k, v := range rec.Meta {
		msg.Header[MetaHeaderPrefix+k] = []string{v}
	}
	js := p.conn.JetStream()
	start := time.Now()
	for {
		fut, err := js.PublishMsgAsync(msg)
		if err == nil {
			return inflight{ok: fut.Ok(), err: fut.Err(), id: id, size: len(rec.Data), sent: time.Now(), rec: rec}, nil
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil && time.Since(start) < p.o.AckTimeout {
			// The connection's own bound is lower than MaxPending, or
			// publishes it still counts were never answered.
			continue
		}
		rec.Release()
		if ctx.Err() != nil {
			return inflight{}, nil
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// Publishes have gone unanswered for AckTimeout: the stream may
			// have been deleted under us (its in-flight messages are never
			// answered), or the server is stuck. Either way, stop.
			p.c.failed.Add(1)
			if _, serr := StreamFor(ctx, p.conn, p.o.Subject); serr != nil {
				return inflight{}, serr
			}
			return inflight{}, fmt.Errorf("item %q: publish to %s: no acknowledgements for %s: %w", id, p.o.Subject, p.o.AckTimeout, err)
		}
		if errors.Is(err, nats.ErrConnectionClosed) {
			return inflight{}, fmt.Errorf("item %q: publish to %s: %w", id, p.o.Subject, err)
		}
		p.c.failed.Add(1)
		p.problem("publish failed", fmt.Errorf("item %q: publish to %s: %w", id, p.o.Subject, err))
		return inflight{}, nil
	}
}
