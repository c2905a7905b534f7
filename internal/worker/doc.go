// Package worker runs stoker's pipelines: it is the one place where a
// pipeline's goroutines start and stop.
//
// A Pipeline moves items through four stages, each one goroutine, joined by
// bounded channels:
//
//	fetch   ─ reads messages from the Source, holds their bytes against the
//	          in-flight budget, rejects oversized or empty items at once
//	batch   ─ groups items by the batch policy (max_items, max_bytes, max_wait)
//	process ─ runs the Processor on a batch; from here until its items are
//	          settled the messages are kept alive with InProgress
//	publish ─ encodes tensors as safetensors, publishes them, waits for the
//	          stream's acknowledgements (publishing again, identical, what
//	          was not acknowledged), then settles every input message
//
// Every input message is settled in exactly one place, settleAll, following
// one table (decide): published → Ack; bad input or out of retries → dead
// letter, then Term; transient failure → NakWithDelay on the retry
// schedule; shutting down before processing → Nak (handed back at once).
//
// Drain is the soft stop: fetching stops, fetched-but-unbatched items are
// handed back, batches already formed are finished. Cancelling Run's context
// is the hard stop: work in flight is abandoned and the server redelivers it
// after AckWait.
package worker
