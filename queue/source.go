package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SourceOptions describes the durable pull consumer a pipeline reads from.
type SourceOptions struct {
	Stream   string // required
	Consumer string // durable name shared by every replica; required
	// FilterSubjects restricts the consumer to these subjects; default: the
	// whole stream.
	FilterSubjects []string
	// AckWait is how long the server waits for an ack before redelivering;
	// default 30s.
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not yet acknowledged,
	// across all replicas; default 1000.
	MaxAckPending int
	// MaxDeliver bounds deliveries per message; default -1 (unlimited),
	// which is what stoker uses: the worker counts deliveries itself and
	// dead-letters an item when they run out, so the server never gives up
	// on a message silently (a bounded consumer would, when the delivery
	// meant to dead-letter it is lost).
	MaxDeliver int
	// BufferMessages bounds the messages this process holds fetched but not
	// yet returned by Next; default 256. Each pull asks for at most half of
	// it, so one request is answered while the previous one is consumed.
	BufferMessages int
	// BufferBytes bounds the payload bytes of those messages; default
	// 32 MiB. A pull is issued while they hold at most half of it and asks
	// for what fits the other half at the size of the recent messages, so
	// the bound can be crossed only by messages larger than those (by one
	// request's worth at most). A message larger than BufferBytes is still
	// fetched, alone.
	BufferBytes int
	// FetchWait is how long one pull request waits for messages; default
	// 500ms. It bounds how long Drain waits for the request in flight.
	FetchWait time.Duration
	// StallAfter is how long pulls may fail in a row before Err reports it
	// and a warning is logged; default 10s. Shorter runs (a leader
	// election, a reconnect) are logged at debug level only.
	StallAfter time.Duration
}

// Source reads messages from a durable pull consumer. One goroutine pulls
// with explicit requests (so that draining loses no message the server
// already sent); Next is meant to be called from one goroutine, Drain and
// Stop from any.
type Source struct {
	opts   SourceOptions
	js     jetstream.JetStream
	config jetstream.ConsumerConfig
	log    *slog.Logger
	msgs   chan *Message
	drain  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// warnedAt is when the pulling goroutine last warned of failing pulls.
	warnedAt time.Time

	mu      sync.Mutex
	cons    jetstream.Consumer
	held    int           // payload bytes in msgs
	freed   chan struct{} // signalled when Next takes a message
	failing time.Time     // when the current run of failed pulls began; zero while pulls succeed
	lastErr error         // the last pull's error while failing
}

// BufferedBytes is the payload held fetched but not yet returned by Next.
func (s *Source) BufferedBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// ErrSourceClosed is returned by Next once the source is stopped or
// drained and its buffer is empty.
var ErrSourceClosed = errors.New("queue: source closed")

// NewSource binds to the durable consumer, creating it when it is missing,
// and starts pulling. An existing consumer is used as it is.
func NewSource(ctx context.Context, c *Conn, o SourceOptions) (*Source, error) {
	if o.Stream == "" || o.Consumer == "" {
		return nil, errors.New("queue: source needs a stream and a consumer name")
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = 1000
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = -1
	}
	if o.BufferMessages == 0 {
		o.BufferMessages = 256
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = 32 << 20
	}
	if o.FetchWait == 0 {
		o.FetchWait = 500 * time.Millisecond
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxAckPending: o.MaxAckPending,
		MaxDeliver:    o.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	switch len(o.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = o.FilterSubjects[0]
	default:
		cfg.FilterSubjects = o.FilterSubjects
	}
	if o.StallAfter == 0 {
		o.StallAfter = 10 * time.Second
	}
	s := &Source{
		opts: o, js: c.js, config: cfg, log: c.log, msgs: make(chan *Message, o.BufferMessages),
		drain: make(chan struct{}), done: make(chan struct{}), freed: make(chan struct{}, 1),
	}
	cons, _, err := s.bind(ctx)
	if err != nil {
		return nil, err
	}
	s.cons = cons
	pullCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.pull(pullCtx)
	return s, nil
}

// bind looks the durable consumer up and creates it when it is missing;
// created says it did.
func (s *Source) bind(ctx context.Context) (cons jetstream.Consumer, created bool, err error) {
	o := s.opts
	cons, err = s.js.Consumer(ctx, o.Stream, o.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.js.CreateConsumer(ctx, o.Stream, s.config)
		created = err == nil
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = s.js.Consumer(ctx, o.Stream, o.Consumer)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("queue: consumer %s on stream %s: %w", o.Consumer, o.Stream, err)
	}
	return cons, created, nil
}

// consumer is the consumer pulls go to.
func (s *Source) consumer() jetstream.Consumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cons
}

// failed records a pull that failed, warns when pulls have failed for
// StallAfter (and each minute after), and binds to the consumer again: a
// consumer deleted on the server (by an operator, or a stream recreated)
// is created again rather than pulled from in vain.
func (s *Source) failed(ctx context.Context, err error) {
	now := time.Now()
	s.mu.Lock()
	if s.failing.IsZero() {
		s.failing = now
	}
	since := s.failing
	s.lastErr = err
	s.mu.Unlock()
	o := s.opts
	if d := now.Sub(since); d >= o.StallAfter {
		if now.Sub(s.warnedAt) >= time.Minute {
			s.warnedAt = now
			s.log.Warn("pulls from the consumer keep failing; retrying", "consumer", o.Consumer, "stream", o.Stream, "for", d.Round(time.Second), "err", err)
		}
	} else {
		s.log.Debug("pull request failed; retrying", "consumer", o.Consumer, "err", err)
	}
	bctx, cancel := context.WithTimeout(ctx, o.FetchWait+time.Second)
	defer cancel()
	cons, created, berr := s.bind(bctx)
	if berr != nil {
		s.log.Debug("consumer lookup failed", "consumer", o.Consumer, "err", berr)
		return
	}
	s.mu.Lock()
	s.cons = cons
	s.mu.Unlock()
	if created {
		s.log.Warn("consumer was missing on the server; created it again", "consumer", o.Consumer, "stream", o.Stream)
	}
}

// pulled records a pull that succeeded.
func (s *Source) pulled() {
	s.warnedAt = time.Time{}
	s.mu.Lock()
	s.failing, s.lastErr = time.Time{}, nil
	s.mu.Unlock()
}

// FailingFor is how long pulls have failed in a row; 0 while they succeed.
func (s *Source) FailingFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing.IsZero() {
		return 0
	}
	return time.Since(s.failing)
}

// Err is nil while pulls succeed, and the last pull's error once they have
// failed for StallAfter in a row: the /readyz check reports it.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing.IsZero() || time.Since(s.failing) < s.opts.StallAfter {
		return nil
	}
	return fmt.Errorf("queue: pulls from consumer %s on stream %s failing for %v: %w", s.opts.Consumer, s.opts.Stream, time.Since(s.failing).Round(time.Second), s.lastErr)
}

// pull issues one pull request at a time and queues what it returns, until
// drained (the request in flight is finished) or stopped (abandoned).
//
// A request is issued only while the buffer holds at most half of
// BufferBytes, and asks for as many messages as fit the other half, judged
// by the largest payload among the recent ones. It never also sets a byte
// limit: on a replicated consumer the server sends the "batch completed"
// status of a request with both limits at once, while the request's
// messages wait for the consumer's quorum, so the client ends the request
// first and the messages go to an inbox nobody reads, to be redelivered
// after AckWait (nats-server 2.15; measured in TestClusteredPullLosesNothing).
func (s *Source) pull(ctx context.Context) {
	defer close(s.done)
	defer close(s.msgs)
	room := s.opts.BufferBytes / 2
	most := max(s.opts.BufferMessages/2, 1)
	var recent recentSizes
	retry := 50 * time.Millisecond
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-s.drain:
			return false
		case <-time.After(retry):
		}
		retry = min(2*retry, 2*time.Second)
		return true
	}
	for {
		select {
		case <-s.drain:
			return
		case <-ctx.Done():
			return
		default:
		}
		for s.BufferedBytes() > room {
			select {
			case <-s.freed:
			case <-s.drain:
				return
			case <-ctx.Done():
				return
			}
		}
		batch, err := s.consumer().Fetch(recent.fit(room, most), jetstream.FetchMaxWait(s.opts.FetchWait))
		if err != nil {
			// Disconnected or the server is restarting: try again shortly.
			s.failed(ctx, err)
			if !pause() {
				return
			}
			continue
		}
		n := 0
		for m := range batch.Messages() {
			msg := newMessage(m)
			n++
			recent.add(len(msg.Data))
			s.mu.Lock()
			s.held += len(msg.Data)
			s.mu.Unlock()
			select {
			case s.msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
		if err := batch.Error(); err != nil && n == 0 {
			// No responders (no consumer leader yet, or no consumer), a
			// leadership change, a server shutting down, a consumer
			// deleted or refusing the request: asking again at once would
			// spin.
			s.failed(ctx, err)
			if !pause() {
				return
			}
			continue
		}
		s.pulled()
		retry = 50 * time.Millisecond
	}
}

// recentSizes remembers the payload sizes of the last messages pulled.
type recentSizes struct {
	sizes [64]int
	n     int // messages seen
}

func (r *recentSizes) add(size int) {
	r.sizes[r.n%len(r.sizes)] = size
	r.n++
}

// fit is how many messages to ask for so that they fit in room bytes if
// none is larger than the largest recent one: between 1 and most; 1 while
// nothing has been seen.
func (r *recentSizes) fit(room, most int) int {
	if r.n == 0 {
		return 1
	}
	largest := 1
	for _, sz := range r.sizes[:min(r.n, len(r.sizes))] {
		largest = max(largest, sz)
	}
	return max(1, min(most, room/largest))
}

// Next blocks until a message arrives, ctx ends (ctx.Err() is returned) or
// the source is closed and its buffer empty (ErrSourceClosed).
func (s *Source) Next(ctx context.Context) (*Message, error) {
	select {
	case m, ok := <-s.msgs:
		if !ok {
			return nil, ErrSourceClosed
		}
		s.mu.Lock()
		s.held -= len(m.Data)
		s.mu.Unlock()
		select {
		case s.freed <- struct{}{}:
		default:
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Drain stops pulling once the request in flight is answered; Next still
// returns every message already received, then ErrSourceClosed.
func (s *Source) Drain() { s.once.Do(func() { close(s.drain) }) }

// Stop stops pulling at once and discards what was fetched; the server
// redelivers those messages after AckWait. It waits for the pulling
// goroutine to end.
func (s *Source) Stop() {
	s.Drain()
	s.cancel()
	<-s.done
}

// Pending reports the consumer's lag: messages not yet delivered and
// messages delivered but not acknowledged.
func (s *Source) Pending(ctx context.Context) (pending uint64, ackPending int, err error) {
	info, err := s.consumer().Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("queue: consumer %s info: %w", s.opts.Consumer, err)
	}
	return info.NumPending, info.NumAckPending, nil
}

// Options returns the options the source runs with, defaults filled in.
func (s *Source) Options() SourceOptions { return s.opts }

// Message is one delivery of a stream message.
type Message struct {
	Subject   string
	Data      []byte
	Header    nats.Header
	Stream    string
	Sequence  uint64 // stream sequence
	Delivered uint64 // number of deliveries, 1 on the first
	Published time.Time
	msg       jetstream.Msg
}

func newMessage(m jetstream.Msg) *Message {
	out := &Message{Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), msg: m}
	if md, err := m.Metadata(); err == nil {
		out.Stream = md.Stream
		out.Sequence = md.Sequence.Stream
		out.Delivered = md.NumDelivered
		out.Published = md.Timestamp
	}
	return out
}

// ID is the item's identity: its Nats-Msg-Id header when the publisher set
// one, else "<stream>:<stream sequence>".
func (m *Message) ID() string {
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	return m.Stream + ":" + strconv.FormatUint(m.Sequence, 10)
}

// Ack acknowledges the message and waits for the server to confirm, so a
// message counted as done is really done.
func (m *Message) Ack(ctx context.Context) error { return m.msg.DoubleAck(ctx) }

// Term tells the server never to redeliver the message.
func (m *Message) Term(reason string) error { return m.msg.TermWithReason(reason) }

// Nak asks for immediate redelivery.
func (m *Message) Nak() error { return m.msg.Nak() }

// NakWithDelay asks for redelivery after d.
func (m *Message) NakWithDelay(d time.Duration) error { return m.msg.NakWithDelay(d) }

// InProgress resets the server's AckWait timer for the message.
func (m *Message) InProgress() error { return m.msg.InProgress() }

// AckNow acknowledges the message without waiting for the server's
// confirmation; a lost ack means a redelivery, never a loss.
func (m *Message) AckNow() error { return m.msg.Ack() }
