package batch

import (
	"errors"
	"fmt"
	"time"
)

// Policy says when a batch closes. A zero field takes its default.
type Policy struct {
	// MaxItems closes a batch when it holds this many items. Default 64.
	MaxItems int
	// MaxBytes closes a batch when its items' sizes add up to this many
	// bytes; an item that would cross it closes the batch before joining.
	// Default 64 MiB.
	MaxBytes int64
	// MaxWait closes a batch when its first item has waited this long.
	// Default 10ms.
	MaxWait time.Duration
}

// The defaults of Policy's fields.
const (
	DefaultMaxItems = 64
	DefaultMaxBytes = 64 << 20
	DefaultMaxWait  = 10 * time.Millisecond
)

// DefaultPolicy returns the policy with every field at its default.
func DefaultPolicy() Policy {
	return Policy{MaxItems: DefaultMaxItems, MaxBytes: DefaultMaxBytes, MaxWait: DefaultMaxWait}
}

// withDefaults fills the zero fields.
func (p Policy) withDefaults() Policy {
	if p.MaxItems == 0 {
		p.MaxItems = DefaultMaxItems
	}
	if p.MaxBytes == 0 {
		p.MaxBytes = DefaultMaxBytes
	}
	if p.MaxWait == 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// ErrInvalidPolicy is returned by NewBatcher for a negative field.
var ErrInvalidPolicy = errors.New("invalid batch policy")

// Validate reports a negative field (zero fields take defaults).
func (p Policy) Validate() error {
	switch {
	case p.MaxItems < 0:
		return fmt.Errorf("%w: max_items must be > 0, got %d", ErrInvalidPolicy, p.MaxItems)
	case p.MaxBytes < 0:
		return fmt.Errorf("%w: max_bytes must be > 0, got %d", ErrInvalidPolicy, p.MaxBytes)
	case p.MaxWait < 0:
		return fmt.Errorf("%w: max_wait must be > 0, got %v", ErrInvalidPolicy, p.MaxWait)
	}
	return nil
}

// Trigger names what closed a batch; it is the label of the batches metric.
type Trigger string

// The triggers.
const (
	TriggerMaxItems Trigger = "max_items" // the batch reached Policy.MaxItems
	TriggerMaxBytes Trigger = "max_bytes" // the batch reached or would have crossed Policy.MaxBytes
	TriggerMaxWait  Trigger = "max_wait"  // the first item waited Policy.MaxWait
	TriggerFlush    Trigger = "flush"     // shutdown or an explicit Flush
	// TriggerRetry labels a batch of one redelivered item: the worker
	// processes an item it has seen before alone, so that an item that
	// fails its batch every time cannot take good items down with it.
	TriggerRetry Trigger = "retry"
)

// Batcher collects items of type T into batches according to a Policy. It
// is not safe for concurrent use: one goroutine drives it.
type Batcher[T any] struct {
	policy  Policy
	items   []T
	bytes   int64
	first   time.Time // arrival of the first pending item
	fullBy  Trigger   // set when the pending batch is already full (see Add)
	initCap int
}

// NewBatcher returns an empty Batcher applying p, its zero fields replaced
// by the defaults. A negative field is an error wrapping ErrInvalidPolicy.
func NewBatcher[T any](p Policy) (*Batcher[T], error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	return &Batcher[T]{policy: p, initCap: min(p.MaxItems, 1024)}, nil
}

// Policy returns the policy in force, defaults filled in.
func (b *Batcher[T]) Policy() Policy { return b.policy }

// Add appends item, of size bytes (a negative size counts as 0), arriving
// at now. When adding closes a batch it returns that batch, the trigger and
// ok == true; the returned slice belongs to the caller.
//
//   - If the pending batch is not empty and item would push it over
//     MaxBytes, the pending batch is returned (TriggerMaxBytes) and item
//     starts the next one.
//   - Otherwise item joins the pending batch, which is returned when it
//     reaches MaxItems (TriggerMaxItems) or MaxBytes (TriggerMaxBytes).
//
// In the first case, an item that alone reaches MaxBytes (or a MaxItems of
// 1) leaves a pending batch that is already full: Deadline then reports its
// arrival time, so the caller's next Expire hands it out at once with the
// trigger that filled it.
func (b *Batcher[T]) Add(item T, size int64, now time.Time) (full []T, trig Trigger, ok bool) {
	size = max(size, 0)
	if len(b.items) > 0 && b.bytes+size > b.policy.MaxBytes {
		full = b.take()
		b.push(item, size, now)
		b.fullBy = b.fullTrigger()
		return full, TriggerMaxBytes, true
	}
	b.push(item, size, now)
	if t := b.fullTrigger(); t != "" {
		return b.take(), t, true
	}
	return nil, "", false
}

func (b *Batcher[T]) push(item T, size int64, now time.Time) {
	if len(b.items) == 0 {
		b.first = now
		if b.items == nil {
			b.items = make([]T, 0, b.initCap)
		}
	}
	b.items = append(b.items, item)
	b.bytes += size
}

// fullTrigger says which limit the pending batch has reached, if any.
func (b *Batcher[T]) fullTrigger() Trigger {
	switch {
	case len(b.items) >= b.policy.MaxItems:
		return TriggerMaxItems
	case len(b.items) > 0 && b.bytes >= b.policy.MaxBytes:
		return TriggerMaxBytes
	}
	return ""
}

// take hands out the pending batch and starts an empty one.
func (b *Batcher[T]) take() []T {
	out := b.items
	b.items = nil
	b.bytes = 0
	b.first = time.Time{}
	b.fullBy = ""
	return out
}

// Deadline returns when the pending batch must be dispatched: its first
// item's arrival plus MaxWait, or that arrival itself when the batch is
// already full (see Add). ok is false when nothing is pending.
func (b *Batcher[T]) Deadline() (time.Time, bool) {
	if len(b.items) == 0 {
		return time.Time{}, false
	}
	if b.fullBy != "" {
		return b.first, true
	}
	return b.first.Add(b.policy.MaxWait), true
}

// Expire returns the pending batch if its deadline is at or before now,
// with TriggerMaxWait (or the trigger that filled it, see Add).
func (b *Batcher[T]) Expire(now time.Time) (batch []T, trig Trigger, ok bool) {
	d, pending := b.Deadline()
	if !pending || now.Before(d) {
		return nil, "", false
	}
	trig = TriggerMaxWait
	if b.fullBy != "" {
		trig = b.fullBy
	}
	return b.take(), trig, true
}

// Flush hands out whatever is pending (nil when nothing is) with
// TriggerFlush.
func (b *Batcher[T]) Flush() ([]T, Trigger) {
	if len(b.items) == 0 {
		return nil, TriggerFlush
	}
	return b.take(), TriggerFlush
}

// Len is the number of pending items.
func (b *Batcher[T]) Len() int { return len(b.items) }

// Bytes is the total size of the pending items.
func (b *Batcher[T]) Bytes() int64 { return b.bytes }
