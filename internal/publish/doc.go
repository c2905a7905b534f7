// Package publish reads raw items from the formats datasets come in and
// publishes them to a NATS JetStream subject, one message per item, for
// `stoker publish`.
//
// Every format has a reader behind one small interface, [Reader], whose
// [Record]s carry a stable id (published as the Nats-Msg-Id header, so a
// re-run is deduplicated by JetStream), the payload and optional metadata
// (published as Stoker-Meta-<name> headers):
//
//   - files: one record per file; id = the base name of a file argument or
//     the slash-separated path relative to a directory argument.
//   - lines: one record per non-empty line; id = "<file id>:<line>", lines
//     counted from 0.
//   - jsonl: one record per JSON line, the payload being one string field;
//     id = "<file id>:<line>" or the value of an id field.
//   - tar: WebDataset shards; one record per sample (members sharing a key),
//     the payload being the member with the wanted extension, the other small
//     members metadata; id = "<shard id>/<sample key>".
//   - parquet: one record per row, the payload a binary or string column,
//     read one page per needed column at a time; id = "<file id>:<row>" or
//     the value of an id column.
//   - tfrecord: one record per tf.train.Example whose payload is one bytes
//     feature; length and data are CRC32C-checked, a corrupt record is
//     reported with its byte offset and skipped; id = "<file id>:<record>"
//     or the value of an id feature.
//
// [Run] expands paths (directories recursively, "-" for stdin) into inputs,
// reads several inputs at once and publishes asynchronously with a bounded
// number of unacknowledged messages, settling acknowledgements in order and
// counting what happened in [Stats]. Publishing never creates streams: a
// subject no stream captures is reported as [ErrNoStream].
//
// Tar shards and TFRecord files named by path are memory-mapped and their
// payloads sliced out of the mapping without copying; such a record must
// be released ([Record.Release]) once its data is no longer used, which
// Run does when the record's publish is acknowledged.
package publish
