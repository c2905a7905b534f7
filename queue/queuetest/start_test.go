package queuetest_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stoker-ml/stoker/queue/queuetest"
)

// A port someone else holds is reported as ErrPortBusy, for the client
// port and for a cluster's route port, instead of a server that never
// becomes ready.
func TestStartReportsBusyPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().(*net.TCPAddr).Port
	free := queuetest.FreePorts(t, 1)[0]
	for name, o := range map[string]*server.Options{
		"client": {ServerName: "client", Host: "127.0.0.1", Port: busy, NoSigs: true},
		"route": {ServerName: "route", Host: "127.0.0.1", Port: free, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: busy}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := queuetest.Start(o, 10*time.Minute)
			if err == nil {
				s.Shutdown()
				t.Fatalf("server started on port %d, which is held", busy)
			}
			if !errors.Is(err, queuetest.ErrPortBusy) {
				t.Fatalf("error %v, want ErrPortBusy", err)
			}
		})
	}
}

// A server on free ports starts and accepts connections.
func TestStartOnFreePort(t *testing.T) {
	port := queuetest.FreePorts(t, 1)[0]
	s, err := queuetest.Start(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("server not accepting on %v: %v", s.Addr(), err)
	}
	c.Close()
}

// RetryPortBusy calls start again while its ports are taken, and stops at
// the first success.
func TestRetryPortBusyRetriesOnlyBusyPorts(t *testing.T) {
	calls := 0
	queuetest.RetryPortBusy(t, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("node %d: %w", calls, queuetest.ErrPortBusy)
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("start called %d times, want 3 (two busy, then started)", calls)
	}
}
