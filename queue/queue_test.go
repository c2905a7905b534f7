package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestSubjectCovers(t *testing.T) {
	cases := []struct {
		outer, inner string
		want         bool
	}{
		{"raw.>", "raw.image.>", true},
		{"raw.image.>", "raw.image.>", true},
		{"raw.image.>", "raw.>", false},
		{"raw.*", "raw.image", true},
		{"raw.*", "raw.image.x", false},
		{"raw.*.>", "raw.image.>", true},
		{"raw.image", "raw.image", true},
		{"raw.image", "raw.*", false},
		{">", "a.b.c", true},
		{"raw.text.>", "raw.image.>", false},
	}
	for _, c := range cases {
		t.Run(c.outer+"~"+c.inner, func(t *testing.T) {
			if got := queue.SubjectCovers(c.outer, c.inner); got != c.want {
				t.Errorf("SubjectCovers(%q, %q) = %v, want %v", c.outer, c.inner, got, c.want)
			}
		})
	}
}

func TestSubjectsOverlap(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"raw.image.>", "raw.text.>", false},
		{"raw.>", "raw.text.x", true},
		{"tensors.image", "raw.image.>", false},
		{"raw.*.x", "raw.image.*", true},
		{"a.b", "a.b.c", false},
	}
	for _, c := range cases {
		if got := queue.SubjectsOverlap(c.a, c.b); got != c.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestValidSubject(t *testing.T) {
	cases := []struct {
		name      string
		s         string
		wildcards bool
		ok        bool
	}{
		{"literal", "tensors.image", false, true},
		{"pattern", "raw.image.>", true, true},
		{"wildcard where literal needed", "raw.*", false, false},
		{"empty token", "raw..image", true, false},
		{"space", "raw image", true, false},
		{"tail not last", "raw.>.x", true, false},
		{"wildcard inside token", "raw.im*", true, false},
		{"empty", "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := queue.ValidSubject(c.s, c.wildcards)
			if (err == nil) != c.ok {
				t.Errorf("ValidSubject(%q, %v) = %v, want ok=%v", c.s, c.wildcards, err, c.ok)
			}
		})
	}
}

func TestEnsureStreamCreatesOnceAndKeepsExisting(t *testing.T) {
	srv := queuetest.RunServer(t)
	c := queuetest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	spec := queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}
	created, err := c.EnsureStream(ctx, spec)
	if err != nil || !created {
		t.Fatalf("first EnsureStream = %v, %v; want created", created, err)
	}
	created, err = c.EnsureStream(ctx, spec)
	if err != nil || created {
		t.Fatalf("second EnsureStream = %v, %v; want existing", created, err)
	}
	// A narrower pipeline subject is covered by the existing stream.
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.image.>"}}); err != nil {
		t.Fatalf("covered subject: %v", err)
	}
	// A subject the existing stream does not capture is an error that names it.
	_, err = c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"other.>"}})
	if err == nil {
		t.Fatal("uncovered subject: no error")
	}
	st, err := c.JetStream().Stream(ctx, "RAW")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != "raw.>" {
		t.Fatalf("existing stream was rewritten: subjects %v", got)
	}
}

// An existing stream whose retention differs from what the pipeline asks
// for is used as it is, with a warning: JetStream cannot change it in
// place, and a bounded limits-retention input stream would fill with
// processed items.
func TestEnsureStreamWarnsOfAnotherRetention(t *testing.T) {
	srv := queuetest.RunServer(t)
	var logged bytes.Buffer
	c := queuetest.Connect(t, srv.ClientURL(), func(o *queue.ConnOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	})
	ctx := context.Background()
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil || logged.Len() != 0 {
		t.Fatalf("same retention: %v, logged %q", err, logged.String())
	}
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}, WorkQueue: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "stream=RAW") {
		t.Fatalf("no warning naming the stream: %q", logged.String())
	}
}

// rawStream starts a server with a stream RAW on "raw.>" and returns a
// connection to it and a context that ends after timeout.
func rawStream(t *testing.T, timeout time.Duration) (*queue.Conn, context.Context) {
	t.Helper()
	srv := queuetest.RunServer(t)
	c := queuetest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

func TestSourceDeliversAndAcks(t *testing.T) {
	c, ctx := rawStream(t, 20*time.Second)
	hdr := nats.Header{}
	hdr.Set("Nats-Msg-Id", "a.jpg")
	if _, err := c.Publish(ctx, "raw.image.x", []byte("one"), hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "raw.image.x", []byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{Stream: "RAW", Consumer: "w", AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	m1, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m1.ID() != "a.jpg" || string(m1.Data) != "one" || m1.Delivered != 1 {
		t.Fatalf("first message: id %q data %q delivered %d", m1.ID(), m1.Data, m1.Delivered)
	}
	m2, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID() != "RAW:2" {
		t.Fatalf("second message id %q, want RAW:2", m2.ID())
	}
	if err := m1.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// m2 is not acked: it must come back after AckWait, with Delivered 2.
	m2b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m2b.ID() != "RAW:2" || m2b.Delivered != 2 {
		t.Fatalf("redelivery: id %q delivered %d", m2b.ID(), m2b.Delivered)
	}
	if err := m2b.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, 30*time.Second, func() error {
		p, ap, err := src.Pending(ctx)
		if err != nil {
			return err
		}
		if p != 0 || ap != 0 {
			return fmt.Errorf("pending %d ack-pending %d", p, ap)
		}
		return nil
	})
}

func TestSourceDrainReturnsBufferedThenCloses(t *testing.T) {
	c, ctx := rawStream(t, 20*time.Second)
	const n = 5
	for i := range n {
		if _, err := c.Publish(ctx, "raw.t", []byte{byte('a' + i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{Stream: "RAW", Consumer: "w"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// The first pull asks for one message; wait until the next pull's
	// messages are held, so that Drain has a buffer to hand over.
	queuetest.WaitFor(t, 30*time.Second, func() error {
		if b := src.BufferedBytes(); b != n-1 {
			return fmt.Errorf("%d bytes buffered, want %d", b, n-1)
		}
		return nil
	})
	src.Drain()
	got := []string{string(m.Data)}
	var held []*queue.Message
	for {
		m, err := src.Next(ctx)
		if errors.Is(err, queue.ErrSourceClosed) {
			break
		}
		if err != nil {
			t.Fatalf("after drain: %v", err)
		}
		got = append(got, string(m.Data))
		held = append(held, m)
	}
	for _, m := range held {
		_ = m.Nak()
	}
	if strings.Join(got, "") != "abcde" {
		t.Fatalf("before and after Drain the source returned %q, want every message in order: abcde", got)
	}
}

// A consumer deleted on the server while a source pulls from it is
// created again, and what is published next is delivered.
func TestSourceRecreatesDeletedConsumer(t *testing.T) {
	c, ctx := rawStream(t, 20*time.Second)
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{Stream: "RAW", Consumer: "w", FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	if err := c.JetStream().DeleteConsumer(ctx, "RAW", "w"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "raw.x", []byte("after"), nil); err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithTimeout(ctx, 30*time.Second)
	defer ncancel()
	m, err := src.Next(nctx)
	if err != nil {
		t.Fatalf("after the consumer was deleted: %v", err)
	}
	if string(m.Data) != "after" {
		t.Fatalf("got %q, want the message published after the deletion", m.Data)
	}
	if _, err := c.JetStream().Consumer(ctx, "RAW", "w"); err != nil {
		t.Fatalf("consumer not on the server: %v", err)
	}
}

// Pulls that keep failing are reported by Err once StallAfter has passed,
// and Err clears when pulls succeed again.
func TestSourceErrReportsFailingPulls(t *testing.T) {
	srv := queuetest.RunServer(t)
	c := queuetest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}
	if _, err := c.EnsureStream(ctx, spec); err != nil {
		t.Fatal(err)
	}
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{
		Stream: "RAW", Consumer: "w", FetchWait: 200 * time.Millisecond, StallAfter: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	if err := src.Err(); err != nil {
		t.Fatalf("Err on a healthy source: %v", err)
	}
	// Without its stream the consumer cannot be created again.
	if err := c.JetStream().DeleteStream(ctx, "RAW"); err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, 10*time.Second, func() error {
		err := src.Err()
		if err == nil {
			return errors.New("Err is nil while the stream is gone")
		}
		if !strings.Contains(err.Error(), "consumer w on stream RAW") {
			return fmt.Errorf("Err %q does not name the consumer and stream", err)
		}
		return nil
	})
	if _, err := c.EnsureStream(ctx, spec); err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, 10*time.Second, func() error {
		if err := src.Err(); err != nil {
			return fmt.Errorf("Err after the stream came back: %v", err)
		}
		return nil
	})
}

// A publish whose acknowledgement never comes (a stream that changed
// leader can drop it without a reply) fails after PublishAckTimeout and
// gives back its place, instead of holding it and its payload for good.
func TestPublishWithoutAckTimesOut(t *testing.T) {
	srv := queuetest.RunServer(t)
	c := queuetest.Connect(t, srv.ClientURL(), func(o *queue.ConnOptions) { o.PublishAckTimeout = 200 * time.Millisecond })
	sub, err := c.NATS().SubscribeSync("silent") // interest, but no reply
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 3 {
		p, err := c.PublishAsync("silent", make([]byte, 1<<20), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx); err == nil || ctx.Err() != nil {
			t.Fatalf("Wait: %v (context: %v), want the publish to time out first", err, ctx.Err())
		}
	}
	if n := c.JetStream().PublishAsyncPending(); n != 0 {
		t.Fatalf("%d unacknowledged publishes still pending", n)
	}
}

func TestEmbeddedRefusesOpenListenWithoutAuth(t *testing.T) {
	_, err := queue.StartEmbedded(queue.EmbeddedOptions{Listen: "0.0.0.0:-1", DataDir: t.TempDir()})
	if !errors.Is(err, queue.ErrUnprotectedListen) {
		t.Fatalf("got %v, want ErrUnprotectedListen", err)
	}
}

// A port already taken is reported at once, with the reason, instead of a
// server that never becomes ready.
func TestEmbeddedReportsBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = queue.StartEmbedded(queue.EmbeddedOptions{Listen: l.Addr().String(), DataDir: t.TempDir(), ReadyTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("StartEmbedded on a busy port: %v, want the address and \"address already in use\"", err)
	}
}

func TestEmbeddedServesJetStream(t *testing.T) {
	e, err := queue.StartEmbedded(queue.EmbeddedOptions{Listen: "127.0.0.1:-1", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	c := queuetest.Connect(t, e.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := c.Publish(ctx, "s.1", []byte("x"), nil)
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish: %+v %v", ack, err)
	}
	if c.MaxPayload() != 8<<20 {
		t.Fatalf("max payload %d, want 8 MiB", c.MaxPayload())
	}
}

func TestRedactDropsCredentials(t *testing.T) {
	_, err := queue.Connect(context.Background(), queue.ConnOptions{URL: "nats://alice:s3cret@127.0.0.1:1", MaxReconnects: 1})
	if err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	if got := err.Error(); strings.Contains(got, "s3cret") || strings.Contains(got, "alice") {
		t.Fatalf("error leaks credentials: %s", got)
	}
}

// TestClusteredPullLosesNothing runs a fresh consumer on an R3 stream of a
// three-node cluster, as replicas do when they start together. Every
// message must come on its first delivery: a pull request whose status
// overtakes its messages (what a request with both a count and a byte
// limit suffers on a replicated consumer) sends them to an inbox nobody
// reads, and they come back only after AckWait, with Delivered > 1.
func TestClusteredPullLosesNothing(t *testing.T) {
	cl := queuetest.RunCluster(t, 3)
	cl.WaitForLeader(30 * time.Second)
	c := queuetest.Connect(t, cl.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	queuetest.WaitFor(t, 30*time.Second, func() error {
		_, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}, Replicas: 3})
		return err // "no suitable peers" until every node has joined
	})
	const n = 1000
	payload := make([]byte, 10_000)
	for i := range n {
		if _, err := c.Publish(ctx, fmt.Sprintf("raw.%d", i), payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{
		Stream: "RAW", Consumer: "w", AckWait: 30 * time.Second, MaxAckPending: 64,
		BufferMessages: 32, BufferBytes: 16 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	seen := map[uint64]bool{}
	for len(seen) < n {
		m, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(seen), n, err)
		}
		if m.Delivered != 1 {
			t.Fatalf("message %d delivered %d times after %d of %d: a delivery was lost", m.Sequence, m.Delivered, len(seen), n)
		}
		seen[m.Sequence] = true
		if err := m.AckNow(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSourceBufferFollowsMessageSize checks that a pull asks only for what
// fits the byte budget: with 1 MiB messages and BufferBytes of 4 MiB the
// source never holds more than 4 MiB, however many messages it may hold.
func TestSourceBufferFollowsMessageSize(t *testing.T) {
	c, ctx := rawStream(t, 30*time.Second)
	const n, size = 40, 1 << 20
	payload := make([]byte, size)
	for i := range n {
		if _, err := c.Publish(ctx, fmt.Sprintf("raw.%d", i), payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	src, err := queue.NewSource(ctx, c, queue.SourceOptions{
		Stream: "RAW", Consumer: "w", BufferMessages: 64, BufferBytes: 4 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	for i := range n {
		// Let the pulling goroutine fill the buffer as far as it will.
		queuetest.WaitFor(t, 10*time.Second, func() error {
			if got := src.BufferedBytes(); got < 2<<20 && i < n-2 {
				return fmt.Errorf("buffer holds %d bytes", got)
			}
			return nil
		})
		if got := src.BufferedBytes(); got > 4<<20 {
			t.Fatalf("before message %d the buffer holds %d bytes, over BufferBytes (4 MiB)", i, got)
		}
		m, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AckNow(); err != nil {
			t.Fatal(err)
		}
	}
}

// An acknowledgement that has arrived is reported even when the context
// has ended too: a stored message must not be reported as failed (its
// items would be published again).
func TestPendingWaitPrefersTheAnswer(t *testing.T) {
	c, ctx := rawStream(t, 20*time.Second)
	done, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 64 {
		p, err := c.PublishAsync("raw.x", []byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.JetStream().PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("no acknowledgement")
		}
		if _, err := p.Wait(done); err != nil {
			t.Fatalf("publish %d: acknowledged, but Wait with an ended context says %v", i, err)
		}
	}
}
