package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/queue"
)

// LoadIDs returns the Nats-Msg-Id of every message the stream holds on
// subject, for --resume.
//
// It reads the stream once through an ordered consumer that delivers
// headers only (no payloads), so the cost is one small message per stored
// message: 260,000–310,000 ids/s here (BenchmarkLoadIDs, 2 shared cores),
// so 10 million ids take about 40 s; the set costs roughly the id's length
// plus 40 bytes of string header and map overhead per id (an estimate:
// 10 million ids of 30 characters ≈ 0.7 GB). Limits:
//   - only what the stream still holds is known: messages removed by its
//     retention (MaxAge, MaxMsgs, a work queue's acks) are published again;
//   - a work-queue stream refuses a second consumer whose filter overlaps the
//     worker's, so resuming onto one fails with the server's error;
//   - messages published without a Nats-Msg-Id are not counted.
func LoadIDs(ctx context.Context, conn *queue.Conn, stream, subject string) (map[string]struct{}, error) {
	js := conn.JetStream()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("resume: stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("resume: stream %s: %w", stream, err)
	}
	var count uint64
	for _, n := range info.State.Subjects {
		count += n
	}
	ids := make(map[string]struct{}, count)
	if count == 0 {
		return ids, nil
	}
	last := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		HeadersOnly:    true,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("resume: read ids of stream %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		return nil, fmt.Errorf("resume: read ids of stream %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				err = errors.New("reading stopped")
			}
			return nil, fmt.Errorf("resume: read ids of stream %s: %w", stream, err)
		}
		if id := msg.Headers().Get(nats.MsgIdHdr); id != "" {
			ids[id] = struct{}{}
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("resume: read ids of stream %s: %w", stream, err)
		}
		if md.NumPending == 0 || md.Sequence.Stream >= last {
			return ids, nil
		}
	}
}
