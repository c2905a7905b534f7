package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// BufferMessages and BufferBytes bound what this process holds fetched
	// but not yet handed to Next; defaults 256 messages, 32 MiB.
	BufferMessages int
	BufferBytes    int
}

// Source reads messages from a durable pull consumer. Next is meant to be
// called from one goroutine; Drain and Stop from any.
type Source struct {
	opts SourceOptions
	cons jetstream.Consumer
	iter jetstream.MessagesContext
}

// ErrSourceClosed is returned by Next once the source is stopped or
// drained and its buffer is empty.
var ErrSourceClosed = errors.New("queue: source closed")

// NewSource binds to the durable consumer, creating it when it is missing.
// An existing consumer is used as it is.
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
	iter, err := cons.Messages(
		jetstream.PullMaxMessagesWithBytesLimit(o.BufferMessages, o.BufferBytes),
		jetstream.PullExpiry(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("queue: pull from consumer %s on stream %s: %w", o.Consumer, o.Stream, err)
	}
	return &Source{opts: o, cons: cons, iter: iter}, nil
}

// Next blocks until a message arrives, ctx ends (ctx.Err() is returned) or
// the source is closed (ErrSourceClosed).
func (s *Source) Next(ctx context.Context) (*Message, error) {
	for {
		m, err := s.iter.Next(jetstream.NextContext(ctx))
		switch {
		case err == nil:
			return newMessage(m), nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil, ErrSourceClosed
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, nats.ErrConnectionReconnecting),
			errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrTimeout):
			// The iterator re-issues its pull requests by itself after a
			// reconnect; wait a little and try again.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return nil, fmt.Errorf("queue: next message from consumer %s: %w", s.opts.Consumer, err)
		}
	}
}

// Drain stops pulling new messages; Next still returns what was already
// fetched, then ErrSourceClosed.
func (s *Source) Drain() { s.iter.Drain() }

// Stop stops pulling and discards the buffer; the server redelivers those
// messages after AckWait.
func (s *Source) Stop() { s.iter.Stop() }

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
