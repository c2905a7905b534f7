package gpu

import (
	"errors"
	"fmt"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess/text"
	"github.com/stoker-ml/stoker/preprocess/text/wordpiece"
)

// ErrUnsupportedTokenizer is wrapped by NewTextProcessor's error for a
// tokenizer that the CPU text.Processor runs but the GPU kernels do not:
// one that is not WordPiece (ErrNotWordPiece), or a WordPiece tokenizer
// beyond the kernels' limits (kernels.ErrWordPieceLimit; the message names
// the limit and the tokenizer's value). Use the CPU text.Processor for it.
var ErrUnsupportedTokenizer = errors.New("gpu: the GPU text path does not run this tokenizer")

// ErrNotWordPiece is returned by NewTextProcessor for a tokenizer the GPU
// kernels do not implement (byte-level BPE such as GPT-2): use the CPU
// text.Processor for it. It matches ErrUnsupportedTokenizer in errors.Is.
var ErrNotWordPiece error = &unsupportedTokenizer{"gpu: the GPU text path implements WordPiece (BERT) tokenizers only"}

// unsupportedTokenizer is an error with its own message that matches
// ErrUnsupportedTokenizer.
type unsupportedTokenizer struct{ msg string }

func (e *unsupportedTokenizer) Error() string { return e.msg }

func (e *unsupportedTokenizer) Is(target error) bool { return target == ErrUnsupportedTokenizer }

// addedToken is a token matched in the raw text before normalisation.
type addedToken struct {
	content string
	id      int32
}

// bertModel is what the GPU text path takes from a text.Tokenizer: the
// same tables, added tokens, post-processor and padding the CPU path uses.
type bertModel struct {
	tables *wordpiece.Tables
	added  []addedToken
	// firstByte[b] is true when some added token starts with byte b.
	firstByte [256]bool
	kernel    *kernels.WordPieceTables
}

// newBertModel reads tok's WordPiece tables, added tokens, post-processor
// and padding.
func newBertModel(tok *text.Tokenizer) (*bertModel, error) {
	tables := tok.WordPiece()
	if tables == nil {
		return nil, ErrNotWordPiece
	}
	m := &bertModel{tables: tables}
	for _, a := range tok.AddedTokens() {
		if a.Content == "" {
			continue
		}
		m.added = append(m.added, addedToken{content: a.Content, id: a.ID})
		m.firstByte[a.Content[0]] = true
	}
	prefix, prefixTypes, suffix, suffixTypes, seqType := tok.Template()
	o := tables.Options
	m.kernel = &kernels.WordPieceTables{
		PageIndex:        tables.PageIndex,
		Pages:            tables.Pages,
		Expansions:       tables.Expansions,
		Slots:            tables.Slots,
		KeyOffsets:       tables.KeyOffsets,
		KeyBytes:         tables.KeyBytes,
		EntryIDs:         tables.EntryIDs,
		ContinuingPrefix: o.ContinuingPrefix,
		PrefixHash:       tables.PrefixHash,
		MaxKeyLen:        tables.MaxKeyLen,
		MaxInputChars:    o.MaxInputCharsPerWord,
		UnkID:            tables.UnkID,
		Prefix:           prefix,
		PrefixTypes:      prefixTypes,
		Suffix:           suffix,
		SuffixTypes:      suffixTypes,
		SeqType:          seqType,
		PadID:            tok.PadID(),
		PadTypeID:        tok.PadTypeID(),
	}
	if err := m.kernel.Validate(); err != nil {
		if errors.Is(err, kernels.ErrWordPieceLimit) {
			// Valid for the CPU tokenizer, too big for the kernels.
			return nil, fmt.Errorf("%w: %w", ErrUnsupportedTokenizer, err)
		}
		return nil, fmt.Errorf("gpu: tokenizer: %w", err)
	}
	return m, nil
}

// nextAdded finds the leftmost added token in doc and, of those starting
// there, the longest, as the CPU tokenizer does (matching happens on the
// raw text, before normalisation). It returns -1 when there is none.
func (m *bertModel) nextAdded(doc []byte) (int, *addedToken) {
	for i := 0; i < len(doc); i++ {
		if !m.firstByte[doc[i]] {
			continue
		}
		var best *addedToken
		for k := range m.added {
			a := &m.added[k]
			if len(a.content) <= len(doc)-i && string(doc[i:i+len(a.content)]) == a.content &&
				(best == nil || len(a.content) > len(best.content)) {
				best = a
			}
		}
		if best != nil {
			return i, best
		}
	}
	return -1, nil
}

// split cuts doc at its added tokens into text pieces and added-token
// pieces. It returns nil when doc has none (one piece, the whole
// document). After limit added tokens the rest of the document cannot
// change the row (those alone fill it), so it is left out.
func (m *bertModel) split(doc []byte, limit int) []kernels.TextPiece {
	if len(m.added) == 0 {
		return nil
	}
	at, tok := m.nextAdded(doc)
	if tok == nil {
		return nil
	}
	var pieces []kernels.TextPiece
	pos, n := 0, 0
	for tok != nil {
		if at > 0 {
			pieces = append(pieces, kernels.TextPiece{Start: pos, End: pos + at, Added: -1})
		}
		pieces = append(pieces, kernels.TextPiece{Added: tok.id})
		pos += at + len(tok.content)
		if n++; n >= limit {
			return pieces
		}
		at, tok = m.nextAdded(doc[pos:])
	}
	if pos < len(doc) {
		pieces = append(pieces, kernels.TextPiece{Start: pos, End: len(doc), Added: -1})
	}
	return pieces
}
