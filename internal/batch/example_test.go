package batch_test

import (
	"fmt"
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
)

// The goroutine that owns a Batcher adds items as they arrive and, between
// arrivals, waits until Deadline to call Expire.
func ExampleBatcher() {
	b, err := batch.NewBatcher[string](batch.Policy{MaxItems: 3, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range []string{"a", "b", "c", "d"} {
		if full, trig, ok := b.Add(name, 100, start.Add(time.Duration(i)*time.Millisecond)); ok {
			fmt.Println(full, trig)
		}
	}
	deadline, _ := b.Deadline()
	fmt.Println("next deadline after", deadline.Sub(start))
	if rest, trig, ok := b.Expire(deadline); ok {
		fmt.Println(rest, trig)
	}
	// Output:
	// [a b c] max_items
	// next deadline after 13ms
	// [d] max_wait
}
