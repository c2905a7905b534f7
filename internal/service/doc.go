// Package service assembles a running stoker from its configuration: the
// broker connection (or an embedded NATS server), the streams, one worker
// pipeline per configured pipeline with the processor for its kind and
// device, and the HTTP endpoints. cmd/stoker's serve verb is a thin shell
// around it.
package service
