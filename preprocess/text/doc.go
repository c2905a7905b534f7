// Package text is stoker's CPU text pipeline: it turns UTF-8 documents into
// the input_ids, attention_mask and token_type_ids tensors a transformer
// takes, with exactly the ids Hugging Face tokenizers (the Rust library,
// version 0.23.2 checked) gives for the same tokenizer.json.
//
// # Tokenizer
//
// Tokenizer reads a tokenizer.json and encodes one document. Two model
// families are implemented here rather than delegated:
//
//   - WordPiece with BertNormalizer and BertPreTokenizer (BERT), in
//     subpackage wordpiece, whose flat tables a GPU kernel can share;
//   - byte-level BPE with the ByteLevel pre-tokeniser (GPT-2), in
//     subpackage bpe.
//
// Post-processors BertProcessing, RobertaProcessing, TemplateProcessing
// (single sequence) and ByteLevel are understood. Added tokens written in
// the text (such as a literal "[CLS]" or "<|endoftext|>") are matched
// before normalisation, leftmost and then longest, as HF does for tokens
// with normalized=false. Any other component is refused by ParseTokenizer
// with an error that names it and wraps ErrUnsupported.
//
// # Processor
//
// Processor implements preprocess.Processor over a Spec. It tokenises a
// batch on at most `threads` goroutines (each takes 8 documents at a time),
// truncates on the right keeping the special tokens (as HF's
// longest_first truncation of a single sequence does), and pads on the
// right. Decisions a caller should know:
//
//   - The pad id is the tokenizer.json's padding.pad_id when set, else the
//     id of "[PAD]" (0 for BERT), else "<pad>", else the first special added
//     token: for GPT-2 that is <|endoftext|>, 50256, as transformers users
//     set pad_token = eos_token. Padding has attention_mask 0 and the
//     tokenizer.json's padding.pad_type_id (0 unless it says otherwise).
//   - With Truncation off, a document longer than MaxLength tokens is bad
//     input (dead letter, with its token count in the reason) rather than a
//     longer row: MaxLength is the model's limit.
//   - RowFacts["num_tokens"] is each row's token count after truncation,
//     before padding (the number of 1s in its attention mask).
//   - Items with invalid UTF-8 (RejectInvalid), over MaxBytes, or too long
//     without truncation are in Batch.Failed wrapping preprocess.ErrBadInput;
//     the other rows are unaffected. A cancelled context fails the batch.
//
// The bundled default tokenizer is bert-base-uncased (tokenizers/, see
// PROVENANCE.md there).
package text
