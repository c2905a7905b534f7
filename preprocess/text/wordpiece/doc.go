// Package wordpiece is stoker's BERT tokenizer: the BertNormalizer,
// BertPreTokenizer and WordPiece model of Hugging Face tokenizers, rebuilt
// around two flat tables that a GPU kernel can share with the CPU path.
//
// Tables holds everything the tokenizer needs once a tokenizer.json has been
// read:
//
//   - a per-code-point table (PageIndex, Pages, Expansions) that says, for
//     every Unicode code point, what BERT normalisation does with it (drop it,
//     turn it into a space, isolate it as a CJK ideograph, or replace it by
//     its accent-stripped and lowercased form of up to a few code points) and
//     how the pre-tokeniser classes it (whitespace, punctuation, other);
//   - the vocabulary as an open-addressing hash table over 32-bit entry
//     numbers (Slots, KeyOffsets, KeyBytes, EntryIDs) hashed with FNV-1a.
//
// The layouts are documented on Tables; they are plain slices so they can be
// copied to device memory unchanged.
//
// Encoder runs the tokenizer on the CPU: normalisation, pre-tokenisation and
// greedy longest-match WordPiece happen in one pass over the input, without
// building an intermediate normalised string.
package wordpiece
