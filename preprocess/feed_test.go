package preprocess_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// A context cancelled before Feed is called hands out no index, even with
// a worker waiting for one, every time.
func TestFeedCancelledHandsOutNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 1000 {
		next := make(chan int)
		got := make(chan int, 1)
		go func() {
			n := 0
			for range next {
				n++
			}
			got <- n
		}()
		if err := preprocess.Feed(ctx, 1, next); !errors.Is(err, context.Canceled) {
			t.Fatalf("Feed = %v, want context.Canceled", err)
		}
		if n := <-got; n != 0 {
			t.Fatalf("a worker got %d indices from a cancelled batch", n)
		}
	}
}

// Every index goes out once, in order, and next is closed after the last.
func TestFeedHandsOutEveryIndex(t *testing.T) {
	next := make(chan int)
	done := make(chan []int)
	go func() {
		var seen []int
		for i := range next {
			seen = append(seen, i)
		}
		done <- seen
	}()
	if err := preprocess.Feed(context.Background(), 5, next); err != nil {
		t.Fatal(err)
	}
	seen := <-done
	if len(seen) != 5 {
		t.Fatalf("indices %v, want 0..4", seen)
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("indices %v, want 0..4", seen)
		}
	}
}
