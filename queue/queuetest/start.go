package queuetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrPortBusy is wrapped by Start's error when the server could not listen
// on one of its ports because something else holds it. Ports chosen by
// FreePorts are free only until they are used: another test process, or
// the local end of any outgoing connection, may take one in between, so a
// caller that chose them can choose again.
var ErrPortBusy = errors.New("port already in use")

// RetryPortBusy calls start, which chooses ports and starts servers on
// them, again while it fails with ErrPortBusy (up to 5 calls), and fails
// the test on any other error. start gives back what it started before
// failing.
func RetryPortBusy(t testing.TB, start func() error) {
	t.Helper()
	const attempts = 5
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrPortBusy) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("%v; choosing other ports", err)
	}
}

// Start starts a server with exactly the given options and waits until it
// accepts connections (and routes, when clustered). It returns at once with
// the server's own reason when the server gives up listening — the server
// reports that only to its logger and would otherwise never become ready —
// and fails after timeout otherwise. The caller shuts the server down.
func Start(o *server.Options, timeout time.Duration) (*server.Server, error) {
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("queuetest: new server %q: %w", o.ServerName, err)
	}
	fatal := &fatalLog{}
	s.SetLoggerV2(fatal, false, false, false)
	go s.Start()
	deadline := time.Now().Add(timeout)
	for !s.ReadyForConnections(50 * time.Millisecond) {
		if msg := fatal.first(); msg != "" {
			s.Shutdown()
			s.WaitForShutdown()
			if strings.Contains(msg, "address already in use") {
				return nil, fmt.Errorf("queuetest: server %q: %s: %w", o.ServerName, msg, ErrPortBusy)
			}
			return nil, fmt.Errorf("queuetest: server %q: %s", o.ServerName, msg)
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, fmt.Errorf("queuetest: server %q not ready for connections within %s", o.ServerName, timeout)
		}
	}
	return s, nil
}

// fatalLog keeps the first fatal message a server logs and drops the rest
// of its log, as NoLog would.
type fatalLog struct {
	mu  sync.Mutex
	msg string
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msg == "" {
		l.msg = fmt.Sprintf(format, v...)
	}
}

func (l *fatalLog) first() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}
