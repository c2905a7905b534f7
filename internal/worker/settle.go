package worker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/preprocess"
)

var (
	// errTransient marks a failure that may pass: retry later.
	errTransient = errors.New("transient failure")
	// errGiveUp marks an item that has had all its deliveries.
	errGiveUp = errors.New("giving up")
	// errHandBack marks an item fetched while draining: hand it back now.
	errHandBack = errors.New("pipeline draining")
)

// action is what becomes of an input message.
type action int

const (
	actAck        action = iota // its tensor is published and acknowledged
	actDeadLetter               // publish to the dead-letter subject, then Term
	actRetry                    // NakWithDelay on the retry schedule
	actHandBack                 // Nak now: another replica takes it
)

// decide is the one table from an item's outcome to the action taken on its
// message.
func (p *Pipeline) decide(e *entry, err error) action {
	switch {
	case err == nil:
		return actAck
	case errors.Is(err, errHandBack):
		return actHandBack
	case errors.Is(err, preprocess.ErrBadInput), errors.Is(err, errGiveUp):
		return actDeadLetter
	case int(e.msg.Delivered) >= p.opts.MaxDeliver:
		return actDeadLetter
	default:
		return actRetry
	}
}

// reason is the metrics label of a failure: a bad input's code, the code
// a whole-batch failure carries (a GPU's "gpu_out_of_memory" or
// "gpu_lost", through preprocess.Reasoner), metrics.ReasonMaxDeliver, or
// metrics.ReasonTransient.
func reason(err error) string {
	if r := preprocess.ReasonOf(err); r != "" {
		return r
	}
	if errors.Is(err, errGiveUp) {
		return metrics.ReasonMaxDeliver
	}
	return metrics.ReasonTransient
}

// settle carries out decide's action for one item. Failures to settle are
// logged: the server redelivers the message after AckWait, so nothing is lost.
func (p *Pipeline) settle(ctx context.Context, e *entry, err error) {
	m := e.msg
	switch p.decide(e, err) {
	case actAck:
		if aerr := m.AckNow(); aerr != nil {
			p.log.Warn("ack failed; the item will be redelivered", "item", e.id, "err", aerr)
			return
		}
		p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.opts.Device, metrics.OutcomeOK).Inc()
		if !m.Published.IsZero() {
			p.m.EndToEndSeconds.WithLabelValues(p.opts.Name).Observe(time.Since(m.Published).Seconds())
		}
	case actHandBack:
		_ = m.Nak()
	case actRetry:
		p.m.FailuresTotal.WithLabelValues(p.opts.Name, reason(err)).Inc()
		p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.opts.Device, metrics.OutcomeRetry).Inc()
		delay := p.backoff(int(m.Delivered))
		p.log.Debug("item handed back for a retry", "item", e.id, "delivery", m.Delivered, "delay", delay, "err", err)
		_ = m.NakWithDelay(delay)
	case actDeadLetter:
		r := reason(err)
		if errors.Is(err, errTransient) {
			r = metrics.ReasonMaxDeliver
		}
		p.m.FailuresTotal.WithLabelValues(p.opts.Name, r).Inc()
		if derr := p.deadLetter(ctx, e, r, err); derr != nil {
			// Without its dead letter the item must not be terminated.
			p.log.Warn("dead-letter publish failed; the item will be retried", "item", e.id, "err", derr)
			_ = m.NakWithDelay(p.backoff(int(m.Delivered)))
			return
		}
		p.m.DeadLettersTotal.WithLabelValues(p.opts.Name, r).Inc()
		p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.opts.Device, metrics.OutcomeDeadLetter).Inc()
		p.log.Info("item dead-lettered", "item", e.id, "reason", r, "err", err)
		_ = m.Term(err.Error())
	}
}

func (p *Pipeline) backoff(delivered int) time.Duration {
	i := min(max(delivered-1, 0), len(p.opts.RetryBackoff)-1)
	return p.opts.RetryBackoff[i]
}

// HeaderOriginal prefixes the item's own Nats-* headers on its dead letter.
const HeaderOriginal = "Stoker-Original-"

// deadLetter publishes the item's original payload and headers to the
// dead-letter subject with the reason, and waits for the acknowledgement.
func (p *Pipeline) deadLetter(ctx context.Context, e *entry, code string, err error) error {
	hdr := nats.Header{}
	for k, v := range e.msg.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			// JetStream reads Nats-* headers as instructions to the stream
			// a message is published to (Nats-Msg-Id, Nats-Expected-Stream,
			// Nats-Expected-Last-Subject-Sequence, Nats-Rollup, Nats-TTL):
			// copied as they are, they would let the item dedupe, refuse or
			// expire its own dead letter. Keep them for the record only.
			hdr[HeaderOriginal+k] = append([]string(nil), v...)
			continue
		}
		hdr[k] = append([]string(nil), v...)
	}
	hdr.Set(HeaderError, err.Error())
	hdr.Set(HeaderReason, code)
	hdr.Set(HeaderItemID, e.id)
	hdr.Set(HeaderPipeline, p.opts.Name)
	hdr.Set(HeaderSubject, e.msg.Subject)
	hdr.Set(HeaderDeliver, strconv.FormatUint(e.msg.Delivered, 10))
	pa, perr := p.pub.PublishAsync(p.opts.DeadLetter, e.msg.Data, hdr)
	if perr != nil {
		return perr
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.SettleTimeout)
	defer cancel()
	_, perr = pa.Wait(ctx)
	return perr
}
