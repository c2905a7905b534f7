// Package preprocess holds what every preprocessing backend shares: the raw
// Item a backend consumes, the Tensor it produces, the Batch that carries a
// batch's tensors and its per-item failures, and the error values callers
// branch on.
//
// A Batch's tensors belong to the processor that made it until its consumer
// calls Batch.Release (the worker does once the batch is encoded); the
// processor then reuses that memory (Buffers) for a later batch instead of
// allocating and zeroing a new tensor each time. Every processor writes
// every byte of the tensors it hands out, and the tests fill released
// tensors with garbage to prove it.
//
// The concrete pipelines live in subpackages: preprocess/image (decode,
// resize, center-crop, normalise) and preprocess/text (tokenisation). This
// package knows nothing of NATS; the worker in internal/worker moves items
// between the queue and a Processor.
package preprocess
