package worker

import (
	"context"
	"errors"
	"fmt"
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

// settle carries out decide's action for one item not in a batch (refused
// or handed back by fetch), kept alive while its dead letter is sent.
func (p *Pipeline) settle(ctx context.Context, e *entry, err error) {
	if p.decide(e, err) == actDeadLetter {
		stop := p.keepAlive(ctx, []*entry{e})
		defer stop()
	}
	p.settleAll(ctx, []*entry{e}, []error{err})
}

// settleAll carries out decide's action for each item, outcomes[i] being
// entries[i]'s. The dead letters go out together and are waited for once.
// Failures to settle are logged: the server redelivers the message after
// AckWait, so nothing is lost.
func (p *Pipeline) settleAll(ctx context.Context, entries []*entry, outcomes []error) {
	var letters []outMsg
	var lettered []int // entries[lettered[k]] is letters[k]'s item
	for i, e := range entries {
		if p.decide(e, outcomes[i]) == actDeadLetter {
			letters = append(letters, p.deadLetter(e, deadLetterReason(outcomes[i]), outcomes[i]))
			lettered = append(lettered, i)
		}
	}
	var letterErr []error
	if len(letters) > 0 {
		letterErr = p.sendAll(ctx, letters)
	}
	k := 0
	for i, e := range entries {
		err := outcomes[i]
		m := e.msg
		switch p.decide(e, err) {
		case actAck:
			if aerr := m.AckNow(); aerr != nil {
				p.log.Warn("ack failed; the item will be redelivered", "item", e.id, "err", aerr)
				continue
			}
			p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.device(), metrics.OutcomeOK).Inc()
			if !m.Published.IsZero() {
				p.m.EndToEndSeconds.WithLabelValues(p.opts.Name).Observe(time.Since(m.Published).Seconds())
			}
		case actHandBack:
			_ = m.Nak()
		case actRetry:
			p.m.FailuresTotal.WithLabelValues(p.opts.Name, reason(err)).Inc()
			p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.device(), metrics.OutcomeRetry).Inc()
			delay := p.backoff(int(m.Delivered))
			p.log.Debug("item handed back for a retry", "item", e.id, "delivery", m.Delivered, "delay", delay, "err", err)
			_ = m.NakWithDelay(delay)
		case actDeadLetter:
			derr := letterErr[k]
			k++
			r := deadLetterReason(err)
			p.m.FailuresTotal.WithLabelValues(p.opts.Name, r).Inc()
			if derr != nil {
				// Without its dead letter the item must not be terminated.
				p.log.Warn("dead-letter publish failed; the item will be retried", "item", e.id, "err", derr)
				_ = m.NakWithDelay(p.backoff(int(m.Delivered)))
				continue
			}
			p.m.DeadLettersTotal.WithLabelValues(p.opts.Name, r).Inc()
			p.m.ItemsTotal.WithLabelValues(p.opts.Name, p.device(), metrics.OutcomeDeadLetter).Inc()
			p.log.Info("item dead-lettered", "item", e.id, "reason", r, "err", err)
			_ = m.Term(err.Error())
		}
	}
}

// deadLetterReason is the reason code a dead letter carries: a transient
// failure that used up the deliveries is max_deliver.
func deadLetterReason(err error) string {
	if errors.Is(err, errTransient) {
		return metrics.ReasonMaxDeliver
	}
	return reason(err)
}

func (p *Pipeline) backoff(delivered int) time.Duration {
	i := min(max(delivered-1, 0), len(p.opts.RetryBackoff)-1)
	return p.opts.RetryBackoff[i]
}

// HeaderOriginal prefixes the item's own Nats-* headers on its dead letter.
const HeaderOriginal = "Stoker-Original-"

// HeaderPayloadOmitted is set on a dead letter that carries no payload
// because the item with stoker's headers would exceed max_payload; it says
// where the item is stored.
const HeaderPayloadOmitted = "Stoker-Payload-Omitted"

// deadLetter is the dead-letter message of an item: its original payload
// and headers with the reason. Its Nats-Msg-Id is the item's position in
// its stream, so a dead letter published twice (a lost acknowledgement, a
// lost Term) is stored once.
func (p *Pipeline) deadLetter(e *entry, code string, err error) outMsg {
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
	hdr.Set(nats.MsgIdHdr, p.opts.Name+":dead-letter:"+position(e.msg))
	data := e.msg.Data
	// What the server's max_payload counts: the payload and the encoded
	// headers (a Msg's size without subject and reply).
	fits := func() bool { return int64((&nats.Msg{Header: hdr, Data: data}).Size()) <= p.opts.MaxPayload }
	if !fits() {
		// Make room first with what can be spared: the item's own Nats-*
		// headers, kept for the record only, and the error's tail. The
		// payload may be the only copy (a work-queue stream removes the
		// item once it is terminated).
		for k := range hdr {
			if strings.HasPrefix(k, HeaderOriginal) {
				delete(hdr, k)
			}
		}
		if msg := []rune(hdr.Get(HeaderError)); len(msg) > maxErrorHeader {
			hdr.Set(HeaderError, string(msg[:maxErrorHeader])+"…")
		}
	}
	if !fits() {
		hdr.Set(HeaderPayloadOmitted, fmt.Sprintf("%d bytes; with these headers the dead letter would exceed max_payload (%d bytes); the item is message %d of stream %s (unless that stream is a work queue, which removes it)", len(data), p.opts.MaxPayload, e.msg.Sequence, e.msg.Stream))
		data = nil
	}
	return outMsg{subject: p.opts.DeadLetter, data: data, hdr: hdr}
}

// maxErrorHeader is how many characters of Stoker-Error a dead letter keeps
// when it must make room for its payload.
const maxErrorHeader = 200
