//go:build resilience

package resilience

import (
	"bytes"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// An item larger than the worker's fetch buffer (the pull requests' byte
// limit, max_inflight_bytes/4 capped at 64 MiB) must not stall its
// pipeline: it is dead-lettered as too large and the items behind it
// arrive.
//
// Found by scenario 9. It fails today: the server answers each pull with
// "409 Message Size Exceeds MaxBytes", never delivers the item, and every
// item behind it waits forever. See .notes/resilience.md for the fix.
func TestItemOverFetchBufferDoesNotStallThePipeline(t *testing.T) {
	b := startBroker(t, func(o *server.Options) {
		o.MaxPayload = 32 << 20
		o.MaxPending = 64 << 20
	})
	c := client(t, b.url())
	// max_inflight_bytes 64MiB: the fetch buffer is 16 MiB.
	cfg := writeConfig(t, b.url(), nil, textPipeline("max_inflight_bytes", "64MiB"))
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	big := item{subject: "raw.text.big", id: "20MB", data: bytes.Repeat([]byte("big text "), 20<<20/9)}
	behind := textItems("behind", 50)
	publishAll(t, c, append([]item{big}, behind...))

	ty := newTally(t, c, "text")
	ty.waitAll(30*time.Second, append(ids(behind), big.id))
	if got := ty.count(ids(behind)); got.Arrived != len(behind) {
		t.Errorf("items behind the big one: %v", got)
	}
	if r := ty.deadHdr[big.id].Get("Stoker-Reason"); r != "too_large" {
		t.Errorf("the 20 MB item: dead letter reason %q, want too_large", r)
	}
}
