// Package queue is stoker's link to NATS JetStream: connecting with the
// usual NATS credentials, starting an embedded server when no broker is
// given, creating streams that are missing (and leaving existing ones as
// they are), reading raw items from a durable pull consumer shared by every
// replica, and publishing with acknowledgements.
//
// It knows nothing of tensors or preprocessing: a Message is bytes, headers
// and the JetStream facts (stream, sequence, deliveries) the worker needs to
// decide how to acknowledge it.
package queue
