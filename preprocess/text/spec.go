package text

import (
	"fmt"

	"github.com/stoker-ml/stoker/preprocess"
)

// Padding says how long the rows of a batch are.
type Padding string

// Padding strategies.
const (
	// PadLongest pads every row to the longest row of the batch (at most
	// MaxLength when Truncation is on).
	PadLongest Padding = "longest"
	// PadMaxLength pads every row to MaxLength.
	PadMaxLength Padding = "max_length"
)

// InvalidUTF8 says what happens to a document that is not valid UTF-8.
type InvalidUTF8 string

// Invalid UTF-8 policies.
const (
	// RejectInvalid fails the item with preprocess.ErrBadInput (dead letter).
	RejectInvalid InvalidUTF8 = "reject"
	// ReplaceInvalid replaces each maximal invalid subsequence by U+FFFD,
	// as Python's bytes.decode("utf-8", errors="replace") does.
	ReplaceInvalid InvalidUTF8 = "replace"
)

// Spec configures a Processor. Start from DefaultSpec; the defaults are
// written on each field.
type Spec struct {
	// Tokenizer is the path of a Hugging Face tokenizer.json; "" (default)
	// is the bundled bert-base-uncased.
	Tokenizer string
	// MaxLength is the longest row in tokens, special tokens included
	// (default 128).
	MaxLength int
	// Truncation cuts documents longer than MaxLength tokens (default
	// true). When false such a document fails as bad input.
	Truncation bool
	// Padding is PadLongest (default) or PadMaxLength.
	Padding Padding
	// InvalidUTF8 is RejectInvalid (default) or ReplaceInvalid.
	InvalidUTF8 InvalidUTF8
	// IDType is the element type of the three tensors: preprocess.Int64
	// (default) or preprocess.Int32.
	IDType preprocess.DType
	// MaxBytes is the largest document accepted in bytes; larger ones fail
	// as bad input. 0 (default) means no limit.
	MaxBytes int64
}

// DefaultSpec returns the default Spec.
func DefaultSpec() Spec {
	return Spec{
		Tokenizer:   "",
		MaxLength:   128,
		Truncation:  true,
		Padding:     PadLongest,
		InvalidUTF8: RejectInvalid,
		IDType:      preprocess.Int64,
		MaxBytes:    0,
	}
}

// Validate reports the first invalid field, named as configuration files
// name it.
func (s Spec) Validate() error {
	if s.MaxLength <= 0 {
		return fmt.Errorf("text.max_length: must be positive, got %d", s.MaxLength)
	}
	switch s.Padding {
	case PadLongest, PadMaxLength:
	default:
		return fmt.Errorf("text.padding: must be %q or %q, got %q", PadLongest, PadMaxLength, s.Padding)
	}
	switch s.InvalidUTF8 {
	case RejectInvalid, ReplaceInvalid:
	default:
		return fmt.Errorf("text.invalid_utf8: must be %q or %q, got %q", RejectInvalid, ReplaceInvalid, s.InvalidUTF8)
	}
	switch s.IDType {
	case preprocess.Int64, preprocess.Int32:
	default:
		return fmt.Errorf("text.id_dtype: must be int64 or int32, got %q", s.IDType)
	}
	if s.MaxBytes < 0 {
		return fmt.Errorf("text.max_bytes: must be 0 (no limit) or positive, got %d", s.MaxBytes)
	}
	return nil
}
