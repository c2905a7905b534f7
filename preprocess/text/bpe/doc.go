// Package bpe is stoker's byte-level BPE tokenizer (GPT-2 style): the
// ByteLevel pre-tokeniser of Hugging Face tokenizers (GPT-2's split
// expression, matched by hand, then bytes as symbols) and the BPE model
// (merges applied lowest rank first, leftmost on ties).
//
// Merging a word of n bytes takes O(n log n) time: a binary heap holds the
// candidate merges, exactly as Hugging Face's implementation orders them, so
// ids are identical and no input takes super-linear time. Each Encoder keeps
// a bounded cache of word → ids.
package bpe
