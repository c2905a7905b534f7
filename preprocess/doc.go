// Package preprocess holds what every preprocessing backend shares: the raw
// Item a backend consumes, the Tensor it produces, the Batch that carries a
// batch's tensors and its per-item failures, and the error values callers
// branch on.
//
// The concrete pipelines live in subpackages: preprocess/image (decode,
// resize, center-crop, normalise) and preprocess/text (tokenisation). This
// package knows nothing of NATS; the worker in internal/worker moves items
// between the queue and a Processor.
package preprocess
