package publish

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress redraws one status line on w every interval until stop closes,
// then draws it a last time and ends the line.
func progress(w io.Writer, interval time.Duration, total int64, c *counters, start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fmt.Fprint(w, "\r"+progressLine(c.snapshot(time.Since(start)), total)+"\x1b[K")
		case <-stop:
			fmt.Fprint(w, "\r"+progressLine(c.snapshot(time.Since(start)), total)+"\x1b[K\n")
			return
		}
	}
}

// progressLine renders a bar (when the input size is known) with counts and
// rates.
func progressLine(s Stats, total int64) string {
	var b strings.Builder
	if total > 0 {
		const width = 24
		frac := min(float64(s.InputBytes)/float64(total), 1)
		full := int(frac * width)
		b.WriteString("[" + strings.Repeat("=", full))
		if full < width {
			b.WriteString(">" + strings.Repeat(" ", width-full-1))
		}
		fmt.Fprintf(&b, "] %3.0f%% ", 100*frac)
	}
	secs := max(s.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(&b, "%d items  %s  %.0f items/s  %.1f MB/s", s.Items, humanBytes(s.Bytes), float64(s.Items)/secs, float64(s.Bytes)/secs/1e6)
	if f := s.Failures(); f > 0 {
		fmt.Fprintf(&b, "  %d failed", f)
	}
	return b.String()
}
