package batch

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// step is one call on a Batcher and what it must return.
type step struct {
	op   string // "add", "expire", "flush", "deadline"
	item string
	size int64
	ms   int // the injected clock, in ms after t0

	want     []string // the batch handed out (nil: none)
	trig     Trigger
	deadline int // for "deadline": want ms after t0; -1: nothing pending
}

func add(item string, size int64, ms int, want []string, trig Trigger) step {
	return step{op: "add", item: item, size: size, ms: ms, want: want, trig: trig}
}
func expire(ms int, want []string, trig Trigger) step {
	return step{op: "expire", ms: ms, want: want, trig: trig}
}
func flush(want []string) step   { return step{op: "flush", want: want, trig: TriggerFlush} }
func deadline(ms int) step       { return step{op: "deadline", deadline: ms} }
func items(s ...string) []string { return s }
func policy(n int, by int64, waitMs int) Policy {
	return Policy{MaxItems: n, MaxBytes: by, MaxWait: time.Duration(waitMs) * time.Millisecond}
}

func TestBatcher(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		steps  []step
	}{
		{"max_items closes on the Nth item", policy(3, 1000, 10), []step{
			add("a", 1, 0, nil, ""),
			add("b", 1, 1, nil, ""),
			deadline(10),
			add("c", 1, 2, items("a", "b", "c"), TriggerMaxItems),
			deadline(-1),
			add("d", 1, 3, nil, ""),
			deadline(13),
		}},
		{"max_items of 1 sends every item alone", policy(1, 1000, 10), []step{
			add("a", 5, 0, items("a"), TriggerMaxItems),
			add("b", 5, 0, items("b"), TriggerMaxItems),
			deadline(-1),
		}},
		{"max_bytes reached exactly closes with the item", policy(10, 100, 10), []step{
			add("a", 60, 0, nil, ""),
			add("b", 40, 1, items("a", "b"), TriggerMaxBytes),
			deadline(-1),
		}},
		{"item crossing max_bytes closes the batch before it", policy(10, 100, 10), []step{
			add("a", 60, 0, nil, ""),
			add("b", 41, 4, items("a"), TriggerMaxBytes),
			deadline(14), // b starts the next batch at 4 ms
			add("c", 59, 5, items("b", "c"), TriggerMaxBytes),
		}},
		{"item alone over max_bytes forms its own batch", policy(10, 100, 10), []step{
			add("big", 500, 0, items("big"), TriggerMaxBytes),
			deadline(-1),
		}},
		{"item over max_bytes after others is due at once", policy(10, 100, 10), []step{
			add("a", 10, 0, nil, ""),
			add("big", 500, 3, items("a"), TriggerMaxBytes),
			deadline(3),
			expire(3, items("big"), TriggerMaxBytes),
			deadline(-1),
		}},
		{"max_wait counts from the first item", policy(10, 1000, 10), []step{
			add("a", 1, 0, nil, ""),
			add("b", 1, 7, nil, ""),
			deadline(10),
			expire(9, nil, ""),
			expire(10, items("a", "b"), TriggerMaxWait),
			expire(50, nil, ""),
			add("c", 1, 50, nil, ""),
			deadline(60),
			expire(61, items("c"), TriggerMaxWait),
		}},
		{"flush hands out what is pending", policy(10, 1000, 10), []step{
			flush(nil),
			add("a", 1, 0, nil, ""),
			add("b", 2, 1, nil, ""),
			flush(items("a", "b")),
			flush(nil),
			deadline(-1),
		}},
		{"negative size counts as zero", policy(10, 10, 10), []step{
			add("a", -5, 0, nil, ""),
			add("b", 10, 0, items("a", "b"), TriggerMaxBytes),
		}},
		{"zero policy takes the defaults", Policy{}, []step{
			add("a", DefaultMaxBytes-1, 0, nil, ""),
			deadline(int(DefaultMaxWait / time.Millisecond)),
			add("b", 1, 1, items("a", "b"), TriggerMaxBytes),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBatcher[string](tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			var wantLen int
			var wantBytes int64
			for i, s := range tc.steps {
				var got []string
				var trig Trigger
				var ok bool
				switch s.op {
				case "add":
					got, trig, ok = b.Add(s.item, s.size, at(s.ms))
				case "expire":
					got, trig, ok = b.Expire(at(s.ms))
				case "flush":
					got, trig = b.Flush()
					ok = got != nil
				case "deadline":
					d, pending := b.Deadline()
					if s.deadline < 0 {
						if pending {
							t.Errorf("step %d: Deadline = %v, want nothing pending", i, d)
						}
					} else if !pending || !d.Equal(at(s.deadline)) {
						t.Errorf("step %d: Deadline = %v (pending %v), want %v", i, d.Sub(t0), pending, at(s.deadline).Sub(t0))
					}
					continue
				}
				if ok != (s.want != nil) || !slices.Equal(got, s.want) || trig != s.trig {
					t.Fatalf("step %d (%s %s): got %q %q ok=%v, want %q %q", i, s.op, s.item, got, trig, ok, s.want, s.trig)
				}
				// Track what must still be pending, independently of the Batcher.
				if s.op == "add" {
					wantLen++
					wantBytes += max(s.size, 0)
				}
				if got != nil {
					wantLen -= len(got)
					for _, it := range got {
						for _, prev := range tc.steps[:i+1] {
							if prev.op == "add" && prev.item == it {
								wantBytes -= max(prev.size, 0)
							}
						}
					}
				}
				if b.Len() != wantLen || b.Bytes() != wantBytes {
					t.Fatalf("step %d: Len %d Bytes %d, want %d %d", i, b.Len(), b.Bytes(), wantLen, wantBytes)
				}
			}
		})
	}
}

// TestBatchNeverExceedsMaxBytes feeds many items of varied sizes and checks
// every batch: within MaxItems, within MaxBytes unless single, nothing lost
// or reordered.
func TestBatchNeverExceedsMaxBytes(t *testing.T) {
	p := policy(7, 1000, 10)
	b, err := NewBatcher[int](p)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int64{}
	var seen []int
	check := func(batch []int) {
		var total int64
		for _, it := range batch {
			total += sizes[it]
		}
		if len(batch) > p.MaxItems || (len(batch) > 1 && total > p.MaxBytes) || len(batch) == 0 {
			t.Fatalf("batch %v: %d items, %d bytes breaks %+v", batch, len(batch), total, p)
		}
		seen = append(seen, batch...)
	}
	now := t0
	for i := range 5000 {
		sizes[i] = int64((i * 7919) % 1300) // some over MaxBytes
		now = now.Add(time.Duration(i%5) * time.Millisecond)
		if batch, _, ok := b.Expire(now); ok {
			check(batch)
		}
		if batch, _, ok := b.Add(i, sizes[i], now); ok {
			check(batch)
		}
	}
	if batch, _ := b.Flush(); batch != nil {
		check(batch)
	}
	for i, it := range seen {
		if it != i {
			t.Fatalf("item %d came out as %d: lost or reordered", i, it)
		}
	}
	if len(seen) != 5000 {
		t.Fatalf("%d items came out, want 5000", len(seen))
	}
}

func TestNewBatcherRefusesNegative(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		want string
	}{
		{"items", Policy{MaxItems: -1}, "max_items must be > 0, got -1"},
		{"bytes", Policy{MaxBytes: -2}, "max_bytes must be > 0, got -2"},
		{"wait", Policy{MaxWait: -time.Second}, "max_wait must be > 0, got -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewBatcher[int](tc.p)
			if !errors.Is(err, ErrInvalidPolicy) || err.Error() != "invalid batch policy: "+tc.want {
				t.Fatalf("err = %v, want ErrInvalidPolicy: %s", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	b, err := NewBatcher[int](Policy{})
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{MaxItems: 64, MaxBytes: 64 << 20, MaxWait: 10 * time.Millisecond}
	if b.Policy() != want || DefaultPolicy() != want {
		t.Fatalf("defaults %+v / %+v, want %+v", b.Policy(), DefaultPolicy(), want)
	}
}
