// Package config reads stoker's one YAML configuration file, fills in the
// defaults and validates it.
//
// The file's keys are documented, with their defaults, in
// deploy/stoker.yaml, which is also the built-in configuration: Default
// parses an embedded copy of it (default.yaml, kept byte-identical by a
// test).
//
// Reading is strict: an unknown key, a duplicate key, or a value of the
// wrong type is an error naming the key's path and line. Validation then
// reports every problem at once, each as a *FieldError whose message is
// "path: reason", for example
//
//	stoker.yaml:14: pipelines[1].batch.max_items: must be > 0, got 0
//
// Defaults, in short: a file without a pipelines key runs the default image
// and text pipelines; a file that lists pipelines runs only those. Each
// pipeline's names derive from its name (stream RAW_<NAME>, consumer
// stoker-<name>, output tensors.<name>, dead letters dlq.<name>, ...), its
// kind from its name when that is "image" or "text", and its image or text
// section from image.DefaultSpec or text.DefaultSpec. Relative file paths
// (credentials, keys, certificates, tokenizer) are resolved by Load against
// the configuration file's directory; embedded.data_dir stays relative to
// the working directory, like the --data-dir flag.
//
// Sizes are written as 1000, 512KiB, 64MiB, 1GiB (powers of 1024) or 64MB
// (powers of 1000); durations as Go writes them (10ms, 30s, 1m30s).
package config
