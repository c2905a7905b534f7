package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
)

// headerRoom is kept free of a message's max_payload for its headers.
const headerRoom = 4 << 10

// publish encodes and publishes each processed batch, then settles its
// items. Each batch's keep-alive, started when the batch was formed, ends
// here once its items are settled.
func (p *Pipeline) publish(ctx context.Context, in <-chan *work) {
	for w := range in {
		select {
		case <-w.done:
		case <-ctx.Done():
			return
		}
		p.publishOne(ctx, w)
		w.stopKeepAlive()
		if w.result != nil {
			w.result.Release() // encoded: the processor may reuse the tensors' memory
		}
		for _, e := range w.entries {
			p.budget.Release(e.size)
		}
		p.m.InflightBytes.WithLabelValues(p.opts.Name).Set(float64(p.budget.Held()))
	}
}

// publishOne publishes a processed batch's tensors and settles every item:
// each one's outcome is its bad-input error, its message's publish error,
// or nil.
func (p *Pipeline) publishOne(ctx context.Context, w *work) {
	outcomes := make([]error, len(w.entries))
	if w.err != nil {
		p.log.Warn("batch failed; its items will be retried", "items", len(w.entries), "first_item", w.entries[0].id, "err", w.err)
		for i, e := range w.entries {
			outcomes[i] = fmt.Errorf("item %q: %w: %w", e.id, errTransient, w.err)
		}
		p.settleAll(ctx, w.entries, outcomes)
		return
	}
	res := w.result
	for i := range res.Failed {
		f := &res.Failed[i]
		outcomes[f.Index] = f // its message names the item
	}
	// Row r of the result is the r-th item that did not fail.
	rows := make([]*entry, 0, res.Len())
	for i, e := range w.entries {
		if outcomes[i] == nil {
			rows = append(rows, e)
		}
	}
	if len(rows) != res.Len() {
		err := fmt.Errorf("%w: the processor returned %d rows for %d good items", errTransient, res.Len(), len(rows))
		for i := range outcomes {
			if outcomes[i] == nil {
				outcomes[i] = err
			}
		}
		p.settleAll(ctx, w.entries, outcomes)
		return
	}
	if res.Len() > 0 {
		pubErr := make(map[*entry]error, len(rows))
		start := time.Now()
		msgs, err := p.encode(res, rows)
		p.observe(metrics.StageEncode, time.Since(start))
		if err != nil {
			for _, e := range rows {
				pubErr[e] = err
			}
		} else {
			start = time.Now()
			errs := p.sendAll(ctx, msgs)
			p.observe(metrics.StagePublish, time.Since(start))
			// Each message settles its own rows: a part of a split batch
			// that was stored is acknowledged even if another part failed.
			for k, m := range msgs {
				for _, e := range rows[m.lo:m.hi] {
					pubErr[e] = errs[k]
				}
			}
		}
		for i, e := range w.entries {
			if err := pubErr[e]; outcomes[i] == nil && err != nil {
				outcomes[i] = fmt.Errorf("item %q: %w: %w", e.id, errTransient, err)
			}
		}
	}
	p.settleAll(ctx, w.entries, outcomes)
}

// outMsg is one message to publish: rows [lo, hi) of a batch, or a dead
// letter.
type outMsg struct {
	subject string
	data    []byte
	hdr     nats.Header
	lo, hi  int
}

// encode turns a processed batch into messages that each fit max_payload;
// rows are the batch's rows' entries. Message ids follow from the input
// messages' stream sequences, which stay the same when an item is
// redelivered and differ between two items even if their producers gave
// them the same id.
func (p *Pipeline) encode(b *preprocess.Batch, rows []*entry) ([]outMsg, error) {
	limit := p.opts.MaxPayload - headerRoom
	if p.opts.OutputMode == OutputItem {
		msgs := make([]outMsg, 0, b.Len())
		for i := range b.IDs {
			part := b.Rows(i, i+1)
			data, err := p.encodeRows(part)
			if err != nil {
				return nil, err
			}
			if int64(len(data)) > limit {
				return nil, fmt.Errorf("item %q: tensor message of %d bytes exceeds the server's max_payload (%d bytes); raise max_payload or choose a smaller dtype", b.IDs[i], len(data), p.opts.MaxPayload)
			}
			hdr := p.headers(part)
			hdr.Set(HeaderItemID, b.IDs[i])
			hdr.Set(nats.MsgIdHdr, p.opts.Name+":"+position(rows[i].msg))
			msgs = append(msgs, outMsg{subject: p.opts.Output, data: data, hdr: hdr, lo: i, hi: i + 1})
		}
		return msgs, nil
	}
	var bounds [][2]int
	if err := p.split(b, 0, b.Len(), limit, &bounds); err != nil {
		return nil, err
	}
	msgs := make([]outMsg, 0, len(bounds))
	for k, r := range bounds {
		part := b.Rows(r[0], r[1])
		data, err := p.encodeRows(part)
		if err != nil {
			return nil, err
		}
		hdr := p.headers(part)
		if len(bounds) > 1 {
			hdr.Set(HeaderPart, fmt.Sprintf("%d/%d", k+1, len(bounds)))
		}
		hdr.Set(nats.MsgIdHdr, p.opts.Name+":"+batchDigest(rows[r[0]:r[1]]))
		msgs = append(msgs, outMsg{subject: p.opts.Output, data: data, hdr: hdr, lo: r[0], hi: r[1]})
	}
	return msgs, nil
}

// position names where and when an input message was stored:
// "<stream>:<sequence>:<stored time, Unix ns>". It is the same on every
// delivery of the message, and differs for a message stored at the same
// sequence of a stream deleted and created again.
func position(m *queue.Message) string {
	return m.Stream + ":" + strconv.FormatUint(m.Sequence, 10) + ":" + strconv.FormatInt(m.Published.UnixNano(), 10)
}

// split cuts rows [i, j) into ranges whose encoding fits limit, halving
// as needed.
func (p *Pipeline) split(b *preprocess.Batch, i, j int, limit int64, parts *[][2]int) error {
	part := b.Rows(i, j)
	size := safetensors.EncodedSize(part.Tensors, p.metadata(part))
	if int64(size) <= limit {
		*parts = append(*parts, [2]int{i, j})
		return nil
	}
	if j-i == 1 {
		return fmt.Errorf("item %q: tensor message of %d bytes exceeds the server's max_payload (%d bytes); raise max_payload or choose a smaller dtype", b.IDs[i], size, p.opts.MaxPayload)
	}
	mid := i + (j-i)/2
	if err := p.split(b, i, mid, limit, parts); err != nil {
		return err
	}
	return p.split(b, mid, j, limit, parts)
}

func (p *Pipeline) encodeRows(b *preprocess.Batch) ([]byte, error) {
	return EncodeBatch(p.opts.Name, b)
}

func (p *Pipeline) metadata(b *preprocess.Batch) map[string]string { return Metadata(p.opts.Name, b) }

// EncodeBatch is the payload stoker publishes for a batch: its tensors as
// safetensors with Metadata.
func EncodeBatch(pipeline string, b *preprocess.Batch) ([]byte, error) {
	return safetensors.Encode(b.Tensors, Metadata(pipeline, b))
}

// Metadata is the safetensors __metadata__ of a batch: the pipeline's name,
// the item ids in row order and the per-row facts, each as JSON.
func Metadata(pipeline string, b *preprocess.Batch) map[string]string {
	md := map[string]string{"pipeline": pipeline, "ids": mustJSON(b.IDs)}
	for k, v := range b.RowFacts {
		md[k] = mustJSON(v)
	}
	return md
}

func (p *Pipeline) headers(b *preprocess.Batch) nats.Header {
	hdr := nats.Header{}
	hdr.Set(HeaderPipeline, p.opts.Name)
	hdr.Set(HeaderItems, strconv.Itoa(b.Len()))
	return hdr
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Row facts are built by stoker's own processors from numbers and
		// strings; failing here is a programming error worth seeing.
		return fmt.Sprintf("%q", err.Error())
	}
	return string(b)
}

// batchDigest names a batch by where its items are stored, so publishing
// the same batch again gives the same Nats-Msg-Id.
func batchDigest(rows []*entry) string {
	h := sha256.New()
	for _, e := range rows {
		h.Write([]byte(position(e.msg)))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// publishAttempts is how many times sendAll publishes a message whose
// acknowledgement does not come.
const publishAttempts = 3

// sendAll publishes msgs asynchronously and waits for every
// acknowledgement, up to SettleTimeout per attempt. A message that was not
// acknowledged (a lost reply, a stream changing leader, a reconnect) is
// published again as it was: with the same Nats-Msg-Id, the stream drops
// the copy if the first one was stored, so a lost acknowledgement costs
// neither a loss nor a duplicate. It returns each message's error.
func (p *Pipeline) sendAll(ctx context.Context, msgs []outMsg) []error {
	errs := make([]error, len(msgs))
	todo := make([]int, len(msgs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.opts.SettleTimeout)
		pending := make(map[int]*queue.Pending, len(todo))
		for _, i := range todo {
			m := msgs[i]
			pa, err := p.pub.PublishAsync(m.subject, m.data, m.hdr)
			errs[i] = err
			if err == nil {
				pending[i] = pa
				if attempt == 1 && m.subject == p.opts.Output {
					p.m.OutputBytesTotal.WithLabelValues(p.opts.Name).Add(float64(len(m.data)))
				}
			}
		}
		for i, pa := range pending {
			_, errs[i] = pa.Wait(actx)
		}
		cancel()
		var again []int
		for _, i := range todo {
			if errs[i] != nil && !errors.Is(errs[i], nats.ErrMaxPayload) {
				again = append(again, i)
			}
		}
		if len(again) == 0 || attempt == publishAttempts || ctx.Err() != nil {
			return errs
		}
		p.log.Debug("publish not acknowledged; publishing again", "messages", len(again), "attempt", attempt+1, "err", errs[again[0]])
		todo = again
	}
}
