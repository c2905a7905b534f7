package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// publish encodes and publishes each processed batch, then settles its items.
func (p *Pipeline) publish(ctx context.Context, in <-chan *work) {
	for w := range in {
		select {
		case <-w.done:
		case <-ctx.Done():
			return
		}
		stop := p.keepAlive(w.entries)
		p.publishOne(ctx, w)
		stop()
		if w.result != nil {
			w.result.Release() // encoded: the processor may reuse the tensors' memory
		}
		for _, e := range w.entries {
			p.budget.release(e.size)
		}
		p.m.InflightBytes.WithLabelValues(p.opts.Name).Set(float64(p.budget.current()))
	}
}

func (p *Pipeline) publishOne(ctx context.Context, w *work) {
	if w.err != nil {
		p.log.Warn("batch failed; items will be retried", "items", len(w.entries), "err", w.err)
		for _, e := range w.entries {
			p.settle(ctx, e, fmt.Errorf("%w: %w", errTransient, w.err))
		}
		return
	}
	res := w.result
	byID := make(map[string]*entry, len(w.entries))
	for _, e := range w.entries {
		byID[e.id] = e
	}
	// Item failures first: dead letters do not wait for the tensors.
	failed := make(map[*entry]error, len(res.Failed))
	for i := range res.Failed {
		f := &res.Failed[i]
		failed[w.entries[f.Index]] = f // its message names the item
	}
	var pubErr error
	if res.Len() > 0 {
		start := time.Now()
		msgs, err := p.encode(res)
		p.observe(metrics.StageEncode, time.Since(start))
		if err == nil {
			start = time.Now()
			err = p.sendAll(ctx, msgs)
			p.observe(metrics.StagePublish, time.Since(start))
		}
		pubErr = err
	}
	for _, e := range w.entries {
		switch err, bad := failed[e]; {
		case bad:
			p.settle(ctx, e, err)
		case pubErr != nil:
			p.settle(ctx, e, fmt.Errorf("%w: %v", errTransient, pubErr))
		default:
			p.settle(ctx, e, nil)
		}
	}
}

// outMsg is one message to publish.
type outMsg struct {
	data []byte
	hdr  nats.Header
}

// encode turns a processed batch into messages that each fit max_payload.
func (p *Pipeline) encode(b *preprocess.Batch) ([]outMsg, error) {
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
			hdr.Set(nats.MsgIdHdr, p.opts.Name+":"+b.IDs[i])
			msgs = append(msgs, outMsg{data: data, hdr: hdr})
		}
		return msgs, nil
	}
	var parts []*preprocess.Batch
	if err := p.split(b, 0, b.Len(), limit, &parts); err != nil {
		return nil, err
	}
	msgs := make([]outMsg, 0, len(parts))
	for k, part := range parts {
		data, err := p.encodeRows(part)
		if err != nil {
			return nil, err
		}
		hdr := p.headers(part)
		id := p.opts.Name + ":" + batchDigest(part.IDs)
		if len(parts) > 1 {
			hdr.Set(HeaderPart, fmt.Sprintf("%d/%d", k+1, len(parts)))
		}
		hdr.Set(nats.MsgIdHdr, id)
		msgs = append(msgs, outMsg{data: data, hdr: hdr})
	}
	return msgs, nil
}

// split cuts rows [i, j) into parts whose encoding fits limit, halving as
// needed.
func (p *Pipeline) split(b *preprocess.Batch, i, j int, limit int64, parts *[]*preprocess.Batch) error {
	part := b.Rows(i, j)
	size := safetensors.EncodedSize(part.Tensors, p.metadata(part))
	if int64(size) <= limit {
		*parts = append(*parts, part)
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

// batchDigest names a batch by its item ids, so republishing the same batch
// gives the same Nats-Msg-Id.
func batchDigest(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// sendAll publishes msgs asynchronously and waits for every acknowledgement.
func (p *Pipeline) sendAll(ctx context.Context, msgs []outMsg) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.SettleTimeout)
	defer cancel()
	pending := make([]*queue.Pending, 0, len(msgs))
	var firstErr error
	for _, m := range msgs {
		pa, err := p.pub.PublishAsync(p.opts.Output, m.data, m.hdr)
		if err != nil {
			firstErr = err
			break
		}
		pending = append(pending, pa)
		p.m.OutputBytesTotal.WithLabelValues(p.opts.Name).Add(float64(len(m.data)))
	}
	for _, pa := range pending {
		if _, err := pa.Wait(ctx); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
