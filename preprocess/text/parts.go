package text

import "github.com/stoker-ml/stoker/preprocess/text/wordpiece"

// The accessors below expose what another implementation of the same
// tokenizer (the GPU WordPiece path in preprocess/gpu) needs, so that both
// are fed by one loader. The returned slices and tables are shared and must
// not be modified.

// WordPiece returns the WordPiece tables, or nil for other models.
func (t *Tokenizer) WordPiece() *wordpiece.Tables { return t.wp }

// AddedToken is a token matched in the raw text before normalisation.
type AddedToken struct {
	Content string
	ID      int32
}

// AddedTokens lists the added tokens in the tokenizer.json's order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := make([]AddedToken, len(t.added))
	for i, a := range t.added {
		out[i] = AddedToken{Content: a.content, ID: a.id}
	}
	return out
}

// Template is the post-processing of a single sequence: prefix ids (and
// their type ids), then the sequence with type id seqType, then suffix.
func (t *Tokenizer) Template() (prefix, prefixTypes, suffix, suffixTypes []int32, seqType int32) {
	return t.prefix, t.prefixTypes, t.suffix, t.suffixTypes, t.seqType
}

// PadTypeID is the type id of padding positions.
func (t *Tokenizer) PadTypeID() int32 { return t.padTypeID }
