package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishStallWait bounds how long PublishAsync waits for room under the
// bound of unacknowledged publishes before it fails.
const publishStallWait = 30 * time.Second

// PubAck is the stream's acknowledgement of a publish.
type PubAck struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // the stream already had a message with this Nats-Msg-Id
}

// Pending is a publish awaiting the stream's acknowledgement.
type Pending struct {
	subject string
	fut     jetstream.PubAckFuture
}

// Wait blocks until the stream acknowledged the message or ctx ends. An
// answer that has arrived wins over a context that has ended too.
func (p *Pending) Wait(ctx context.Context) (PubAck, error) {
	select {
	case ack := <-p.fut.Ok():
		return p.ok(ack)
	case err := <-p.fut.Err():
		return PubAck{}, p.failed(err)
	default:
	}
	select {
	case ack := <-p.fut.Ok():
		return p.ok(ack)
	case err := <-p.fut.Err():
		return PubAck{}, p.failed(err)
	case <-ctx.Done():
		return PubAck{}, p.failed(ctx.Err())
	}
}

func (p *Pending) ok(ack *jetstream.PubAck) (PubAck, error) {
	return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

func (p *Pending) failed(err error) error {
	return fmt.Errorf("queue: publish to %s: %w", p.subject, err)
}

// PublishAsync sends a message to a stream subject without waiting; the
// number of publishes awaiting acknowledgement is bounded by
// ConnOptions.PublishAsyncMaxPending (a call blocks while at the bound).
func (c *Conn) PublishAsync(subject string, data []byte, hdr nats.Header) (*Pending, error) {
	msg := &nats.Msg{Subject: subject, Data: data, Header: hdr}
	// At the bound, wait for room rather than fail: a slow broker slows
	// publishing down instead of failing it.
	fut, err := c.js.PublishMsgAsync(msg, jetstream.WithStallWait(publishStallWait))
	if err != nil {
		return nil, fmt.Errorf("queue: publish to %s: %w", subject, err)
	}
	return &Pending{subject: subject, fut: fut}, nil
}

// Publish sends a message to a stream subject and waits for its acknowledgement.
func (c *Conn) Publish(ctx context.Context, subject string, data []byte, hdr nats.Header) (PubAck, error) {
	ack, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: hdr})
	if err != nil {
		return PubAck{}, fmt.Errorf("queue: publish to %s: %w", subject, err)
	}
	return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}
