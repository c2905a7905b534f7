package queuetest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of servers inside the test process, joined
// by routes on loopback. Each node keeps its ports and store across Stop and
// Restart, so clients given URLs() find it again.
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	servers []*server.Server // nil while a node is stopped
}

// RunCluster starts n (at least 3 for R3 streams) clustered JetStream
// servers on loopback and waits until the cluster has a JetStream meta
// leader. Every node is shut down when the test ends. Ports taken by
// someone else between choosing and listening are chosen again.
func RunCluster(t testing.TB, n int, opts ...ServerOption) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("queuetest: a cluster needs at least one node, got %d", n)
	}
	c := &Cluster{t: t, servers: make([]*server.Server, n)}
	t.Cleanup(func() {
		for i := range c.servers {
			c.Stop(i)
		}
	})
	RetryPortBusy(t, func() error {
		c.opts = clusterOptions(t, n, opts)
		err := c.startAll()
		if err != nil {
			for i := range c.servers {
				c.Stop(i)
			}
		}
		return err
	})
	c.WaitForLeader(30 * time.Second)
	return c
}

// clusterOptions gives n nodes free client and route ports, each a store
// of its own and routes to every node.
func clusterOptions(t testing.TB, n int, mods []ServerOption) []*server.Options {
	clientPorts := FreePorts(t, n)
	routePorts := FreePorts(t, n)
	routes := make([]string, n)
	for i, p := range routePorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	opts := make([]*server.Options, n)
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("node-%d", i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			MaxPayload: 8 << 20,
			MaxPending: 64 << 20,
			Cluster: server.ClusterOpts{
				Name: "stoker-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		for _, f := range mods {
			f(o)
		}
		opts[i] = o
	}
	return opts
}

func (c *Cluster) startAll() error {
	for i := range c.opts {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) start(i int) error {
	s, err := Start(c.opts[i].Clone(), readyTimeout)
	if err != nil {
		return fmt.Errorf("queuetest: cluster node %d: %w", i, err)
	}
	c.servers[i] = s
	return nil
}

// Size is the number of nodes, running or stopped.
func (c *Cluster) Size() int { return len(c.opts) }

// Server returns node i, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server { return c.servers[i] }

// URL is node i's client URL.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port)
}

// URLs lists every node's client URL, comma-separated, as clients take it.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.opts))
	for i := range c.opts {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i down and waits for it; stopping a stopped node does
// nothing.
func (c *Cluster) Stop(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

// Restart starts a stopped node i again with its ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.servers[i] != nil {
		c.t.Fatalf("queuetest: cluster node %d is running", i)
	}
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
}

// WaitForLeader waits until a running node is the JetStream meta leader
// and every running node knows the cluster's JetStream state.
func (c *Cluster) WaitForLeader(timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, func() error {
		leaders := 0
		for i, s := range c.servers {
			if s == nil {
				continue
			}
			if !s.JetStreamEnabled() {
				return fmt.Errorf("node %d: JetStream not enabled yet", i)
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d JetStream meta leaders among the running nodes, want 1", leaders)
		}
		return nil
	})
}

// MetaLeader is the index of the node that is the JetStream meta leader,
// or -1.
func (c *Cluster) MetaLeader() int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the node leading the stream's replicas in
// the global account, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// ConsumerLeader is the index of the node leading the consumer's replicas
// in the global account, or -1.
func (c *Cluster) ConsumerLeader(stream, consumer string) int {
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return i
		}
	}
	return -1
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (held open together while choosing, so they differ).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("queuetest: free port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
