package text

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/stoker-ml/stoker/preprocess/text/bpe"
	"github.com/stoker-ml/stoker/preprocess/text/wordpiece"
)

//go:embed tokenizers/bert-base-uncased.json
var bundledBERT []byte

// ErrUnsupported is returned by ParseTokenizer for a tokenizer.json that
// uses a component stoker does not implement; the message names it.
var ErrUnsupported = errors.New("unsupported tokenizer component")

// Encoding is the result of encoding one document: special tokens
// included, no padding. TypeIDs has the length of IDs.
type Encoding struct {
	IDs, TypeIDs []int32
}

// Tokenizer encodes documents as a Hugging Face tokenizer.json says. It is
// safe for concurrent use.
type Tokenizer struct {
	wp  *wordpiece.Tables // WordPiece model, or nil
	bpe *bpe.Model        // byte-level BPE model, or nil

	addPrefixSpace bool // ByteLevel: prepend a space to a segment that lacks one

	added      []addedToken // matched in raw text before normalisation
	addedFirst [256]bool    // first bytes of added tokens

	// Post-processing of a single sequence: prefix + sequence + suffix.
	prefix, prefixTypes []int32
	suffix, suffixTypes []int32
	seqType             int32

	vocabSize int
	padID     int32
	padTypeID int32

	states sync.Pool // *encoderState
}

type addedToken struct {
	content string
	id      int32
}

// encoderState is the per-goroutine scratch of a Tokenizer.
type encoderState struct {
	wp  *wordpiece.Encoder
	bpe *bpe.Encoder
	buf []byte
	ids []int32
}

var (
	defaultOnce sync.Once
	defaultTok  *Tokenizer
	defaultErr  error
)

// DefaultTokenizer is the bundled bert-base-uncased tokenizer, parsed once.
func DefaultTokenizer() (*Tokenizer, error) {
	defaultOnce.Do(func() { defaultTok, defaultErr = ParseTokenizer(bundledBERT) })
	return defaultTok, defaultErr
}

// LoadTokenizer reads and parses a tokenizer.json file.
func LoadTokenizer(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseTokenizer(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// tokenizer.json, the parts stoker reads.
type fileJSON struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         json.RawMessage `json:"model"`
	Padding       *struct {
		PadID     int    `json:"pad_id"`
		PadTypeID int    `json:"pad_type_id"`
		PadToken  string `json:"pad_token"`
	} `json:"padding"`
}

type typed struct {
	Type string `json:"type"`
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

func typeOf(m json.RawMessage) (string, error) {
	var t typed
	if err := json.Unmarshal(m, &t); err != nil {
		return "", err
	}
	return t.Type, nil
}

// ParseTokenizer builds a Tokenizer from the contents of a tokenizer.json.
func ParseTokenizer(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	modelType, err := typeOf(f.Model)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}
	t := &Tokenizer{}
	var vocab map[string]int
	switch modelType {
	case "WordPiece":
		vocab, err = t.parseWordPiece(f)
	case "BPE":
		vocab, err = t.parseBPE(f)
	default:
		return nil, fmt.Errorf("%w: model %q (stoker implements WordPiece and byte-level BPE%s)", ErrUnsupported, modelType, libraryNote(modelType))
	}
	if err != nil {
		return nil, err
	}
	maxID := -1
	for _, id := range vocab {
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		if a.Lstrip || a.Rstrip || a.SingleWord {
			return nil, fmt.Errorf("%w: added token %q with lstrip, rstrip or single_word", ErrUnsupported, a.Content)
		}
		if a.Normalized {
			return nil, fmt.Errorf("%w: added token %q with normalized=true", ErrUnsupported, a.Content)
		}
		if a.Content == "" {
			continue
		}
		t.added = append(t.added, addedToken{content: a.Content, id: int32(a.ID)})
		t.addedFirst[a.Content[0]] = true
		maxID = max(maxID, a.ID)
	}
	t.vocabSize = maxID + 1
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	t.choosePad(f, vocab)
	return t, nil
}

func (t *Tokenizer) parseWordPiece(f fileJSON) (map[string]int, error) {
	var m struct {
		Vocab    map[string]int `json:"vocab"`
		Unk      string         `json:"unk_token"`
		Prefix   *string        `json:"continuing_subword_prefix"`
		MaxChars *int           `json:"max_input_chars_per_word"`
	}
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("tokenizer.json: WordPiece model: %w", err)
	}
	opt := wordpiece.Options{UnkToken: m.Unk, ContinuingPrefix: "##", MaxInputCharsPerWord: 100}
	if m.Prefix != nil {
		opt.ContinuingPrefix = *m.Prefix
	}
	if m.MaxChars != nil {
		opt.MaxInputCharsPerWord = *m.MaxChars
	}
	if !isNull(f.Normalizer) {
		typ, err := typeOf(f.Normalizer)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
		}
		if typ != "BertNormalizer" {
			return nil, fmt.Errorf("%w: normalizer %q with a WordPiece model (stoker implements BertNormalizer)", ErrUnsupported, typ)
		}
		var n struct {
			CleanText    *bool `json:"clean_text"`
			Chinese      *bool `json:"handle_chinese_chars"`
			StripAccents *bool `json:"strip_accents"`
			Lowercase    *bool `json:"lowercase"`
		}
		if err := json.Unmarshal(f.Normalizer, &n); err != nil {
			return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
		}
		val := func(p *bool, def bool) bool {
			if p == nil {
				return def
			}
			return *p
		}
		opt.CleanText = val(n.CleanText, true)
		opt.HandleChineseChars = val(n.Chinese, true)
		opt.Lowercase = val(n.Lowercase, true)
		opt.StripAccents = val(n.StripAccents, opt.Lowercase) // null follows lowercase, as in HF
	}
	if isNull(f.PreTokenizer) {
		return nil, fmt.Errorf("%w: WordPiece without a pre_tokenizer (stoker implements BertPreTokenizer)", ErrUnsupported)
	}
	if typ, err := typeOf(f.PreTokenizer); err != nil || typ != "BertPreTokenizer" {
		return nil, fmt.Errorf("%w: pre_tokenizer %q with a WordPiece model (stoker implements BertPreTokenizer)", ErrUnsupported, typ)
	}
	tables, err := wordpiece.NewTables(m.Vocab, opt)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t.wp = tables
	return m.Vocab, nil
}

func (t *Tokenizer) parseBPE(f fileJSON) (map[string]int, error) {
	var m struct {
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		Dropout      *float64          `json:"dropout"`
		Prefix       *string           `json:"continuing_subword_prefix"`
		Suffix       *string           `json:"end_of_word_suffix"`
		ByteFallback bool              `json:"byte_fallback"`
		IgnoreMerges bool              `json:"ignore_merges"`
	}
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("tokenizer.json: BPE model: %w", err)
	}
	switch {
	case m.Dropout != nil && *m.Dropout > 0:
		return nil, fmt.Errorf("%w: BPE with dropout", ErrUnsupported)
	case m.Prefix != nil && *m.Prefix != "", m.Suffix != nil && *m.Suffix != "":
		return nil, fmt.Errorf("%w: BPE with continuing_subword_prefix or end_of_word_suffix", ErrUnsupported)
	case m.ByteFallback:
		return nil, fmt.Errorf("%w: BPE with byte_fallback", ErrUnsupported)
	case m.IgnoreMerges:
		return nil, fmt.Errorf("%w: BPE with ignore_merges", ErrUnsupported)
	}
	if !isNull(f.Normalizer) {
		typ, _ := typeOf(f.Normalizer)
		return nil, fmt.Errorf("%w: normalizer %q with a BPE model (stoker implements byte-level BPE without normaliser)", ErrUnsupported, typ)
	}
	var pre struct {
		Type           string `json:"type"`
		AddPrefixSpace bool   `json:"add_prefix_space"`
		UseRegex       *bool  `json:"use_regex"`
	}
	if isNull(f.PreTokenizer) {
		return nil, fmt.Errorf("%w: BPE without a ByteLevel pre_tokenizer", ErrUnsupported)
	}
	if err := json.Unmarshal(f.PreTokenizer, &pre); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if pre.Type != "ByteLevel" || pre.UseRegex != nil && !*pre.UseRegex {
		return nil, fmt.Errorf("%w: pre_tokenizer %q with a BPE model (stoker implements ByteLevel with use_regex%s)", ErrUnsupported, pre.Type, libraryNote("BPE"))
	}
	t.addPrefixSpace = pre.AddPrefixSpace
	merges := make([][2]string, len(m.Merges))
	for i, raw := range m.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer.json: merge %d %q is not two tokens", i, s)
			}
			merges[i] = [2]string{a, b}
			continue
		}
		var p []string
		if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("tokenizer.json: merge %d %s is not two tokens", i, raw)
		}
		merges[i] = [2]string{p[0], p[1]}
	}
	model, err := bpe.NewModel(m.Vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t.bpe = model
	return m.Vocab, nil
}

// parsePostProcessor reads what is added around a single sequence.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	typ, err := typeOf(raw)
	if err != nil {
		return fmt.Errorf("tokenizer.json: post_processor: %w", err)
	}
	switch typ {
	case "ByteLevel":
		return nil // changes offsets only
	case "BertProcessing", "RobertaProcessing":
		var p struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || len(p.Sep) != 2 || len(p.Cls) != 2 {
			return fmt.Errorf("tokenizer.json: post_processor %s: want sep and cls as [token, id]", typ)
		}
		var cls, sep int32
		if json.Unmarshal(p.Cls[1], &cls) != nil || json.Unmarshal(p.Sep[1], &sep) != nil {
			return fmt.Errorf("tokenizer.json: post_processor %s: token ids are not integers", typ)
		}
		t.prefix, t.prefixTypes = []int32{cls}, []int32{0}
		t.suffix, t.suffixTypes = []int32{sep}, []int32{0}
		return nil
	case "TemplateProcessing":
		return t.parseTemplate(raw)
	case "Sequence":
		var s struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("tokenizer.json: post_processor Sequence: %w", err)
		}
		for _, p := range s.Processors {
			if err := t.parsePostProcessor(p); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: post_processor %q", ErrUnsupported, typ)
}

func (t *Tokenizer) parseTemplate(raw json.RawMessage) error {
	var p struct {
		Single []struct {
			SpecialToken *struct {
				ID     string `json:"id"`
				TypeID int32  `json:"type_id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID     string `json:"id"`
				TypeID int32  `json:"type_id"`
			} `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int32 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("tokenizer.json: post_processor TemplateProcessing: %w", err)
	}
	if len(t.prefix)+len(t.suffix) > 0 {
		return fmt.Errorf("%w: more than one post_processor adding tokens", ErrUnsupported)
	}
	seen := false
	for _, piece := range p.Single {
		switch {
		case piece.Sequence != nil:
			if seen {
				return fmt.Errorf("%w: TemplateProcessing with the sequence twice", ErrUnsupported)
			}
			seen = true
			t.seqType = piece.Sequence.TypeID
		case piece.SpecialToken != nil:
			st, ok := p.SpecialTokens[piece.SpecialToken.ID]
			if !ok {
				return fmt.Errorf("tokenizer.json: TemplateProcessing: special token %q not defined", piece.SpecialToken.ID)
			}
			for _, id := range st.IDs {
				if seen {
					t.suffix = append(t.suffix, id)
					t.suffixTypes = append(t.suffixTypes, piece.SpecialToken.TypeID)
				} else {
					t.prefix = append(t.prefix, id)
					t.prefixTypes = append(t.prefixTypes, piece.SpecialToken.TypeID)
				}
			}
		}
	}
	return nil
}

// choosePad picks the padding id: the file's padding config when present,
// else [PAD], else <pad>, else the first special added token (GPT-2's
// <|endoftext|>, as transformers users set pad_token = eos_token), else 0.
func (t *Tokenizer) choosePad(f fileJSON, vocab map[string]int) {
	if f.Padding != nil {
		t.padID, t.padTypeID = int32(f.Padding.PadID), int32(f.Padding.PadTypeID)
		return
	}
	for _, name := range []string{"[PAD]", "<pad>"} {
		if id, ok := vocab[name]; ok {
			t.padID = int32(id)
			return
		}
	}
	for _, a := range f.AddedTokens {
		if a.Special {
			t.padID = int32(a.ID)
			return
		}
	}
}

// VocabSize is one more than the largest id the tokenizer can produce.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// PadID is the id used for padding (see choosePad for how it is chosen).
func (t *Tokenizer) PadID() int32 { return t.padID }

// UnknownID is the id of the unknown token ([UNK] for WordPiece); ok is
// false for models without one (byte-level BPE covers every input).
func (t *Tokenizer) UnknownID() (id int32, ok bool) {
	if t.wp != nil {
		return t.wp.UnkID, true
	}
	return 0, false
}

// NumSpecialTokens is how many tokens post-processing adds to a document.
func (t *Tokenizer) NumSpecialTokens() int { return len(t.prefix) + len(t.suffix) }

func (t *Tokenizer) getState() *encoderState {
	if s, ok := t.states.Get().(*encoderState); ok {
		return s
	}
	return t.newState()
}

func (t *Tokenizer) newState() *encoderState {
	s := &encoderState{}
	if t.wp != nil {
		s.wp = t.wp.NewEncoder()
	} else {
		s.bpe = t.bpe.NewEncoder(0)
	}
	return s
}

func (t *Tokenizer) putState(s *encoderState) { t.states.Put(s) }

// Encode tokenises doc. Invalid UTF-8 is read as Python's errors="replace"
// reads it. With addSpecial the post-processor's tokens ([CLS] … [SEP] for
// BERT; none for GPT-2) are added.
func (t *Tokenizer) Encode(doc string, addSpecial bool) Encoding {
	s := t.getState()
	defer t.putState(s)
	if !utf8.ValidString(doc) {
		s.buf = appendReplacingInvalid(s.buf[:0], []byte(doc))
		doc = string(s.buf)
	}
	var ids []int32
	if addSpecial {
		ids = append(ids, t.prefix...)
	}
	ids = t.encodeContent(s, ids, doc, 0)
	n := len(ids)
	if addSpecial {
		ids = append(ids, t.suffix...)
	}
	types := make([]int32, len(ids))
	if addSpecial {
		copy(types, t.prefixTypes)
		for i := len(t.prefix); i < n; i++ {
			types[i] = t.seqType
		}
		copy(types[n:], t.suffixTypes)
	}
	return Encoding{IDs: ids, TypeIDs: types}
}

// encodeContent appends the ids of doc (valid UTF-8) without special
// tokens; limit > 0 allows stopping once limit ids have been appended.
func (t *Tokenizer) encodeContent(s *encoderState, dst []int32, doc string, limit int) []int32 {
	base := len(dst)
	for len(doc) > 0 {
		at, tok := t.nextAdded(doc)
		seg := doc
		if tok != nil {
			seg = doc[:at]
		}
		if len(seg) > 0 {
			rem := 0
			if limit > 0 {
				rem = max(limit-(len(dst)-base), 1)
			}
			dst = t.encodeSegment(s, dst, seg, rem)
			if limit > 0 && len(dst)-base >= limit {
				break // the segment may have stopped early: nothing after it counts
			}
		}
		if tok == nil {
			break
		}
		dst = append(dst, tok.id)
		doc = doc[at+len(tok.content):]
		if limit > 0 && len(dst)-base >= limit {
			break
		}
	}
	return dst
}

func (t *Tokenizer) encodeSegment(s *encoderState, dst []int32, seg string, limit int) []int32 {
	if t.wp != nil {
		return s.wp.Encode(dst, seg, limit)
	}
	if t.addPrefixSpace && seg[0] != ' ' {
		seg = " " + seg
	}
	return s.bpe.Encode(dst, seg, limit)
}

// nextAdded finds the leftmost added token in doc, the longest one there.
func (t *Tokenizer) nextAdded(doc string) (int, *addedToken) {
	if len(t.added) == 0 {
		return 0, nil
	}
	for i := 0; i < len(doc); i++ {
		if !t.addedFirst[doc[i]] {
			continue
		}
		var best *addedToken
		for k := range t.added {
			a := &t.added[k]
			if strings.HasPrefix(doc[i:], a.content) && (best == nil || len(a.content) > len(best.content)) {
				best = a
			}
		}
		if best != nil {
			return i, best
		}
	}
	return 0, nil
}
