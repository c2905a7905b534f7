//go:build resilience

package resilience

import (
	"fmt"
	"testing"
	"time"
)

// Replicas of a fresh deployment start at the same moment and race to
// create the same streams and consumers; every one of them must come up.
func TestSimultaneousStartup(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			b := startBroker(t)
			cfg := writeConfig(t, b.url(), nil, imagePipeline(), textPipeline())
			ws := make([]*proc, 3)
			for i := range ws {
				ws[i] = startStoker(t, fmt.Sprintf("replica-%d", i+1), cfg)
			}
			for _, w := range ws {
				w.waitReady(30 * time.Second)
			}
		})
	}
}
