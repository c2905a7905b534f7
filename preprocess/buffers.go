package preprocess

import "sync"

// Buffers recycles tensor memory from one batch to the next, so that a
// processor does not allocate (and have the runtime zero) a new tensor
// for every batch. It is safe for concurrent use. What it holds is
// dropped by the garbage collector like any sync.Pool's content, so it
// never keeps memory a busy process does not use.
type Buffers struct{ pool sync.Pool }

// Get returns a buffer of n bytes whose content is undefined: whoever
// takes it must write every byte. A buffer put back earlier is reused when
// it is big enough.
func (p *Buffers) Get(n int) []byte {
	if b, ok := p.pool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

// Put hands b back for a later Get. b must no longer be read or written.
func (p *Buffers) Put(b []byte) {
	if cap(b) == 0 {
		return
	}
	p.pool.Put(&b)
}

// OnRelease registers f to run when the batch's consumer calls Release: a
// processor uses it to take its tensors' memory back (Buffers.Put).
func (b *Batch) OnRelease(f func()) { b.release = append(b.release, f) }

// Release tells the processor that made b that nobody reads its tensors
// any more (they were encoded, or measured): their memory may hold the
// next batch. b's tensors must not be used after Release. Calling it is
// optional; a Batch that is dropped without it is simply collected.
func (b *Batch) Release() {
	fs := b.release
	b.release = nil
	for _, f := range fs {
		f()
	}
	b.Tensors = nil
}
