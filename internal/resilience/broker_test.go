//go:build resilience

package resilience

import (
	"fmt"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/queue/queuetest"
)

// progress waits until the workers together have settled at least n items.
func progress(t testing.TB, ws []*proc, n float64) {
	t.Helper()
	queuetest.WaitFor(t, 2*time.Minute, func() error {
		var sum float64
		for _, w := range ws {
			v, err := w.metric("stoker_items_total", `outcome="ok"`)
			if err != nil {
				return err
			}
			sum += v
		}
		if sum < n {
			return fmt.Errorf("workers settled %.0f items, waiting for %.0f", sum, n)
		}
		return nil
	})
}

// Scenario 4: the NATS server is stopped and started again on the same
// port and store while two workers are busy; they reconnect and every item
// arrives. The outage is either as short as it takes both workers to
// notice it, or longer than AckWait, so that every delivery outstanding at
// the stop has expired when the server returns.
func TestBrokerRestart(t *testing.T) {
	const ackWait = 3 * time.Second
	for _, outage := range []time.Duration{0, ackWait + time.Second} {
		t.Run(fmt.Sprintf("outage=%s", outage), func(t *testing.T) {
			b := startBroker(t)
			c := client(t, b.url())
			cfg := writeConfig(t, b.url(), nil,
				imagePipeline("ack_wait", ackWait.String()),
				textPipeline("ack_wait", ackWait.String()))
			texts, images := textItems("restart", 20000), imageItems(t, "restart", 2000, 320, 240)
			ensureStreams(t, c, 1, "text", "image")
			publishAll(t, c, interleave(texts, images))
			ws := startReplicas(t, 2, cfg)
			progress(t, ws, 2000)

			b.stop()
			stopped := time.Now()
			queuetest.WaitFor(t, 30*time.Second, func() error {
				for _, w := range ws {
					if w.countLog("nats disconnected") == 0 {
						return fmt.Errorf("%s has not noticed the server is gone", w.name)
					}
				}
				return nil
			})
			// The outage itself: a scenario parameter, not a wait for work.
			time.Sleep(time.Until(stopped.Add(outage)))
			b.restart()
			down := time.Since(stopped)
			queuetest.WaitFor(t, 30*time.Second, func() error {
				for _, w := range ws {
					if w.countLog("nats reconnected") == 0 {
						return fmt.Errorf("%s has not reconnected", w.name)
					}
				}
				return nil
			})

			tt, ti := newTally(t, c, "text"), newTally(t, c, "image")
			tt.waitAll(5*time.Minute, ids(texts))
			ti.waitAll(5*time.Minute, ids(images))
			gt, gi := tt.count(ids(texts)), ti.count(ids(images))
			for _, g := range []struct {
				name string
				c    counts
			}{{"text", gt}, {"image", gi}} {
				if g.c.Arrived != g.c.Published || g.c.DeadLettered != 0 || g.c.Unexpected != 0 {
					t.Errorf("%s: %v, unexpected %d; want every item", g.name, g.c, g.c.Unexpected)
				}
			}
			for _, w := range ws {
				if w.hasExited() {
					t.Errorf("%s exited: %v", w.name, w.waitErr)
				}
			}
			t.Logf("scenario 4 (broker restart, down %s, AckWait %s): text %v; image %v",
				down.Round(time.Millisecond), ackWait, gt, gi)
		})
	}
}

// Scenario 5: a 3-node JetStream cluster with R3 streams; a node is lost
// while two workers are busy, and every item arrives: the node leading the
// text stream is stopped, or the node leading the text consumer is stopped
// and, once the workers have gone on without it, started again.
func TestClusterNodeLoss(t *testing.T) {
	t.Run("stream leader stopped", func(t *testing.T) {
		clusterNodeLoss(t, func(t *testing.T, cl *queuetest.Cluster, _ []*proc) string {
			victim := cl.StreamLeader("RAW_TEXT")
			if victim < 0 {
				t.Fatal("no node leads RAW_TEXT")
			}
			cl.Stop(victim)
			return fmt.Sprintf("node-%d leading RAW_TEXT stopped", victim)
		})
	})
	t.Run("consumer leader stopped and restarted", func(t *testing.T) {
		clusterNodeLoss(t, func(t *testing.T, cl *queuetest.Cluster, ws []*proc) string {
			victim := cl.ConsumerLeader("RAW_TEXT", "stoker-text")
			if victim < 0 {
				t.Fatal("no node leads the consumer stoker-text")
			}
			cl.Stop(victim)
			progress(t, ws, 4000)
			cl.Restart(victim)
			return fmt.Sprintf("node-%d leading consumer stoker-text stopped, restarted after 4000 items", victim)
		})
	})
}

func clusterNodeLoss(t *testing.T, disrupt func(*testing.T, *queuetest.Cluster, []*proc) string) {
	cl := queuetest.RunCluster(t, 3)
	c := client(t, cl.URLs())
	ensureStreams(t, c, 3, "text", "image")
	const ackWait = 3 * time.Second
	cfg := writeConfig(t, cl.URLs(), nil,
		imagePipeline("ack_wait", ackWait.String()),
		textPipeline("ack_wait", ackWait.String()))
	texts, images := textItems("cluster", 10000), imageItems(t, "cluster", 1000, 320, 240)
	publishAll(t, c, interleave(texts, images))
	ws := startReplicas(t, 2, cfg)
	progress(t, ws, 1500)

	stopped := time.Now()
	what := disrupt(t, cl, ws)

	tt, ti := newTally(t, c, "text"), newTally(t, c, "image")
	tt.waitAll(5*time.Minute, ids(texts))
	ti.waitAll(5*time.Minute, ids(images))
	gt, gi := tt.count(ids(texts)), ti.count(ids(images))
	for _, g := range []struct {
		name string
		c    counts
	}{{"text", gt}, {"image", gi}} {
		if g.c.Arrived != g.c.Published || g.c.DeadLettered != 0 || g.c.Unexpected != 0 {
			t.Errorf("%s: %v, unexpected %d; want every item", g.name, g.c, g.c.Unexpected)
		}
	}
	for _, w := range ws {
		if w.hasExited() {
			t.Errorf("%s exited: %v", w.name, w.waitErr)
		}
	}
	t.Logf("scenario 5 (cluster, %s; all arrived %s after the stop): text %v; image %v",
		what, time.Since(stopped).Round(time.Millisecond), gt, gi)
}
