package preprocess

import (
	"context"
	"sync"
)

// Budget bounds the bytes held at once by those sharing it: the raw bytes
// a pipeline holds between fetch and settle, the memory of the images a
// processor decodes at once. A holder larger than the whole budget holds
// all of it (Acquire and Release count it as the budget's size), so it
// waits until nothing else is held and then runs alone, rather than
// forever. A nil *Budget bounds nothing. It is safe for
// concurrent use.
type Budget struct {
	max int64

	mu      sync.Mutex
	held    int64
	peak    int64
	changed chan struct{} // closed and replaced when bytes are given back
}

// NewBudget returns a budget of max bytes, or nil (no bound) when max is 0
// or less.
func NewBudget(max int64) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max, changed: make(chan struct{})}
}

// Acquire waits until n bytes fit and holds them, or returns ctx's error.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if b == nil {
		return nil
	}
	n = min(n, b.max)
	for {
		b.mu.Lock()
		if b.held+n <= b.max {
			b.held += n
			b.peak = max(b.peak, b.held)
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

// Release gives back n bytes that Acquire handed out.
func (b *Budget) Release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.held -= min(n, b.max)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// Held is the bytes held now.
func (b *Budget) Held() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Peak is the most ever held at once.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}
