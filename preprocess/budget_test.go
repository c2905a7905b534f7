package preprocess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/preprocess"
)

func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := preprocess.NewBudget(100)
	if err := b.Acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// 60 + 50 does not fit: Acquire waits until 60 are given back.
	got := make(chan error, 1)
	go func() { got <- b.Acquire(ctx, 50) }()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Acquire(short, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second 50 over the budget: %v, want the context's error", err)
	}
	b.Release(60)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if b.Held() != 50 || b.Peak() != 60 {
		t.Fatalf("held %d peak %d, want 50 and 60", b.Held(), b.Peak())
	}
	b.Release(50)
	// A holder larger than the whole budget holds all of it, alone.
	if err := b.Acquire(ctx, 250); err != nil || b.Held() != 100 {
		t.Fatalf("an oversized holder with nothing held: %v, held %d, want the whole 100", err, b.Held())
	}
	b.Release(250)
	if b.Held() != 0 {
		t.Fatalf("held %d after every holder gave back", b.Held())
	}

	var none *preprocess.Budget // NewBudget(0): no bound
	if preprocess.NewBudget(0) != nil || none.Acquire(ctx, 1<<40) != nil || none.Held() != 0 || none.Peak() != 0 {
		t.Fatal("a nil budget bounds something")
	}
	none.Release(1 << 40)
}
