//go:build resilience

package resilience

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/queue/queuetest"
)

// load is the mixed workload of scenarios 1 to 3: 8,000 texts and 2,000
// 320×240 JPEGs (made into 32×32 uint8 tensors).
func load(t testing.TB, prefix string) (texts, images []item) {
	return textItems(prefix, 8000), imageItems(t, prefix, 2000, 320, 240)
}

// startReplicas starts n workers of cfg and waits until each is ready.
func startReplicas(t testing.TB, n int, cfg string) []*proc {
	t.Helper()
	ws := make([]*proc, n)
	for i := range ws {
		ws[i] = startStoker(t, fmt.Sprintf("replica-%d", i+1), cfg)
	}
	for _, w := range ws {
		w.waitReady(30 * time.Second)
	}
	return ws
}

// Scenario 1: replicas share the pipelines' consumers; every item's tensor
// arrives exactly once; throughput with 1, 2 and 3 replicas is logged.
func TestReplicasShareTheWork(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) {
			b := startBroker(t)
			c := client(t, b.url())
			cfg := writeConfig(t, b.url(), nil, imagePipeline(), textPipeline())
			ws := startReplicas(t, n, cfg)
			texts, images := load(t, "share")

			start := time.Now()
			publishAll(t, c, interleave(texts, images))
			tt, ti := newTally(t, c, "text"), newTally(t, c, "image")
			tt.waitAll(5*time.Minute, ids(texts))
			ti.waitAll(5*time.Minute, ids(images))
			elapsed := time.Since(start)

			gt, gi := tt.count(ids(texts)), ti.count(ids(images))
			for _, g := range []struct {
				name string
				c    counts
			}{{"text", gt}, {"image", gi}} {
				if g.c.Arrived != g.c.Published || g.c.Duplicates != 0 || g.c.DeadLettered != 0 || g.c.Unexpected != 0 {
					t.Errorf("%s: %v, unexpected %d; want every item once", g.name, g.c, g.c.Unexpected)
				}
			}
			var shares []float64
			for _, w := range ws {
				v, err := w.metric("stoker_items_total", `outcome="ok"`)
				if err != nil {
					t.Fatal(err)
				}
				shares = append(shares, v)
				if v == 0 {
					t.Errorf("%s processed no item: the replicas do not share the consumers", w.name)
				}
			}
			total := len(texts) + len(images)
			t.Logf("scenario 1 (replicas=%d): text %v; image %v; %d items in %s = %.0f items/s; items per replica %v",
				n, gt, gi, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), shares)
		})
	}
}

// interleave alternates texts and images as a mixed producer would.
func interleave(a, b []item) []item {
	out := make([]item, 0, len(a)+len(b))
	for i := 0; i < len(a) || i < len(b); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// Scenarios 2 and 3: one of three replicas is killed with SIGKILL while it
// holds items; every item still arrives after AckWait. In output_mode item
// the re-publication of an interrupted batch is dropped by the stream's
// duplicate window, so no item arrives twice; in batch mode duplicates are
// possible and are counted.
func TestCrashedReplicaLosesNothing(t *testing.T) {
	for _, mode := range []string{"batch", "item"} {
		t.Run("output_mode="+mode, func(t *testing.T) {
			b := startBroker(t)
			c := client(t, b.url())
			const ackWait = 2 * time.Second
			cfg := writeConfig(t, b.url(), nil,
				imagePipeline("output_mode", mode, "ack_wait", ackWait.String()),
				textPipeline("output_mode", mode, "ack_wait", ackWait.String()))
			texts, images := load(t, "crash-"+mode)
			ensureStreams(t, c, 1, "text", "image")
			publishAll(t, c, interleave(texts, images))
			ws := startReplicas(t, 3, cfg)
			victim := ws[0]

			// Kill the victim while it holds fetched, unsettled items.
			tt, ti := newTally(t, c, "text"), newTally(t, c, "image")
			var held float64
			queuetest.WaitFor(t, time.Minute, func() error {
				done, err := victim.metric("stoker_items_total", `outcome="ok"`)
				if err != nil {
					return err
				}
				if done < 200 {
					return fmt.Errorf("%s settled %.0f items, waiting for 200", victim.name, done)
				}
				v, err := victim.metric("stoker_inflight_bytes")
				if err != nil {
					return err
				}
				if v == 0 {
					return fmt.Errorf("%s holds no item right now", victim.name)
				}
				held = v
				return nil
			})
			victim.signal(syscall.SIGKILL)
			victim.wait(10 * time.Second)
			killed := time.Now()

			tt.waitAll(5*time.Minute, ids(texts))
			ti.waitAll(5*time.Minute, ids(images))
			recovered := time.Since(killed)
			gt, gi := tt.count(ids(texts)), ti.count(ids(images))
			var redelivered float64
			for _, w := range ws[1:] {
				v, err := w.metric("stoker_redeliveries_total")
				if err != nil {
					t.Fatal(err)
				}
				redelivered += v
			}
			if redelivered == 0 {
				t.Errorf("the surviving replicas saw no redelivery: the kill interrupted nothing")
			}
			for _, g := range []struct {
				name string
				c    counts
			}{{"text", gt}, {"image", gi}} {
				if g.c.Arrived != g.c.Published || g.c.DeadLettered != 0 || g.c.Unexpected != 0 {
					t.Errorf("%s: %v, unexpected %d; want every item", g.name, g.c, g.c.Unexpected)
				}
				if mode == "item" && g.c.Duplicates != 0 {
					t.Errorf("%s: %d duplicates in output_mode item, want 0", g.name, g.c.Duplicates)
				}
			}
			t.Logf("scenario 2/3 (output_mode=%s, AckWait %s): text %v; image %v; victim held %.0f bytes when killed; survivors saw %.0f redeliveries; all arrived %s after the kill",
				mode, ackWait, gt, gi, held, redelivered, recovered.Round(time.Millisecond))
		})
	}
}
