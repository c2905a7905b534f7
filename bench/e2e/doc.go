// Package e2e measures the whole stoker service through NATS JetStream:
// the harness behind `stoker bench e2e`.
//
// In one run it measures, on the same server and with the same payloads:
// the preprocessing stage alone (bench.Run, no NATS), the broker's own
// ceiling (a publish-only loop and a consume-and-ack loop with no
// preprocessing), and stoker itself — N in-process workers (services
// sharing the pipeline's durable consumer) fed at full speed, then at a
// paced rate (by default half the full-speed rate) for the latency a user
// sees when the service is not saturated. Latency is from the moment an
// item is handed to the publisher to the moment the tensor message (or the
// dead letter) naming it arrives on a subscription.
//
// Streams and subjects get a per-run suffix, so a run against a shared
// server (--nats) never touches existing streams; they are deleted at the
// end.
package e2e
