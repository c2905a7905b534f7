package worker

import (
	"context"
	"sync"
)

// byteBudget bounds the raw bytes a pipeline holds. An item larger than the
// whole budget is admitted when nothing else is held, so it cannot block
// forever.
type byteBudget struct {
	mu      sync.Mutex
	held    int64
	max     int64
	changed chan struct{}
}

func newByteBudget(max int64) *byteBudget {
	return &byteBudget{max: max, changed: make(chan struct{})}
}

func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.held == 0 || b.held+n <= b.max {
			b.held += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.held -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *byteBudget) current() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
