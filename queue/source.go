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
	// MaxDeliver bounds deliveries per message; default -1 (unlimited). The
	// worker dead-letters a message on its last delivery, so it is never
	// dropped silently.
	MaxDeliver int
	// BufferMessages bounds the messages this process holds fetched but not
	// yet returned by Next; default 256. Each pull asks for at most half of
	// it, so one request is answered while the previous one is consumed.
	BufferMessages int
	// BufferBytes bounds the payload bytes of those messages; default
	// 32 MiB. It is raised to twice the server's max_payload (plus framing)
	// when lower: the server never delivers a message larger than a pull
	// request's byte limit, and the consumer would stall on it for good.
	BufferBytes int
	// FetchWait is how long one pull request waits for messages; default
	// 500ms. It bounds how long Drain waits for the request in flight.
	FetchWait time.Duration
}

// Source reads messages from a durable pull consumer. One goroutine pulls
// with explicit requests (so that draining loses no message the server
// already sent); Next is meant to be called from one goroutine, Drain and
// Stop from any.
type Source struct {
	opts   SourceOptions
	cons   jetstream.Consumer
	msgs   chan *Message
	drain  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	log    *slog.Logger

	mu    sync.Mutex
	held  int           // payload bytes in msgs
	freed chan struct{} // signalled when Next takes a message
}

// fetchOverhead is the room a pull request's byte limit leaves beyond
// max_payload for a message's subject, reply and protocol framing.
const fetchOverhead = 64 << 10

func (s *Source) buffered() int {
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
	o.BufferBytes = max(o.BufferBytes, 2*(int(c.MaxPayload())+fetchOverhead))
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
	cons, err := c.js.Consumer(ctx, o.Stream, o.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = c.js.CreateConsumer(ctx, o.Stream, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = c.js.Consumer(ctx, o.Stream, o.Consumer)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("queue: consumer %s on stream %s: %w", o.Consumer, o.Stream, err)
	}
	pullCtx, cancel := context.WithCancel(context.Background())
	s := &Source{
		opts: o, cons: cons, msgs: make(chan *Message, o.BufferMessages),
		drain: make(chan struct{}), cancel: cancel, done: make(chan struct{}), log: c.log,
		freed: make(chan struct{}, 1),
	}
	go s.pull(pullCtx)
	return s, nil
}

// pull issues one pull request at a time and queues what it returns, until
// drained (the request in flight is finished) or stopped (abandoned).
func (s *Source) pull(ctx context.Context) {
	defer close(s.done)
	defer close(s.msgs)
	// A request is issued only while the buffer holds at most half of
	// BufferBytes, and asks for at most the other half.
	want := max(s.opts.BufferMessages/2, 1)
	wantBytes := s.opts.BufferBytes / 2
	retry := 50 * time.Millisecond
	for {
		select {
		case <-s.drain:
			return
		case <-ctx.Done():
			return
		default:
		}
		for s.buffered() > wantBytes {
			select {
			case <-s.freed:
			case <-s.drain:
				return
			case <-ctx.Done():
				return
			}
		}
		batch, err := s.cons.Fetch(want, jetstream.FetchMaxWait(s.opts.FetchWait), jetstream.FetchMaxBytes(wantBytes))
		if err != nil {
			// Disconnected or the server is restarting: try again shortly.
			s.log.Debug("pull request failed; retrying", "consumer", s.opts.Consumer, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, 2*time.Second)
			continue
		}
		retry = 50 * time.Millisecond
		for m := range batch.Messages() {
			msg := newMessage(m)
			s.mu.Lock()
			s.held += len(msg.Data)
			s.mu.Unlock()
			select {
			case s.msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}
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
	info, err := s.cons.Info(ctx)
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
