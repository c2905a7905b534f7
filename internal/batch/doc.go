// Package batch is the batching policy of a pipeline: it decides when the
// items collected so far form a batch to dispatch.
//
// A Batcher is a small synchronous object, with no goroutine and no clock of
// its own: the one goroutine that drives a pipeline feeds it items with Add,
// asks it with Deadline when the pending batch must leave, calls Expire when
// that time comes, and Flush at shutdown. Every returned batch comes with the
// Trigger that closed it, for the metric of which trigger fired.
//
// A batch closes when it reaches Policy.MaxItems items, when it reaches
// Policy.MaxBytes bytes, or when its first item has waited Policy.MaxWait.
// A batch never exceeds MaxBytes unless it holds a single item: an item
// that would push the pending batch over MaxBytes closes the pending batch
// and starts the next one. An item that alone reaches MaxBytes forms a batch
// of its own; the worker rejects items over the per-item limit
// (limits.max_bytes, which the configuration keeps at or below
// batch.max_bytes) before they reach the Batcher, so this is a corner case,
// not a way around the limit.
package batch
