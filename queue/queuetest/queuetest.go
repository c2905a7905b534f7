// Package queuetest starts real NATS JetStream servers inside a test
// process and waits on conditions with a deadline.
package queuetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stoker-ml/stoker/queue"
)

// readyTimeout bounds how long a test server may take to listen: long, as
// a loaded CI machine running packages side by side under -race can be slow
// to start one, and a port taken in between is reported at once anyway.
const readyTimeout = 30 * time.Second

// ServerOption adjusts the options of a test server before it starts.
type ServerOption func(*server.Options)

// RunServer starts a JetStream server on a random loopback port with its
// store in a temporary directory; it is shut down when the test ends.
func RunServer(t testing.TB, opts ...ServerOption) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 8 << 20,
		MaxPending: 64 << 20,
	}
	for _, f := range opts {
		f(o)
	}
	return StartServer(t, o)
}

// StartServer starts a server with exactly the given options.
func StartServer(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := Start(o, readyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a queue.Conn to url that is closed when the test ends.
func Connect(t testing.TB, url string, opts ...func(*queue.ConnOptions)) *queue.Conn {
	t.Helper()
	o := queue.ConnOptions{URL: url, Name: t.Name()}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := queue.Connect(ctx, o)
	if err != nil {
		t.Fatalf("queuetest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// WaitFor polls cond every few milliseconds until it returns nil or the
// timeout passes, then fails the test with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 2 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queuetest: condition not met within %s: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a wait for work to finish
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// Errorf is fmt.Errorf, for conditions given to WaitFor.
func Errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
