package text

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"

	"github.com/stoker-ml/stoker/preprocess"
)

// libraryName names the third-party tokenizer library in errors, so a
// dead-lettered document says which code failed on it.
const libraryName = "github.com/sugarme/tokenizer v0.3.0"

// libraryTokenizer runs a tokenizer.json through github.com/sugarme/tokenizer
// (read and encoded by the library, not by stoker). stoker uses it where the
// library serves: reading tokenizer.json files of models stoker does not
// reimplement, and cross-checks (sugarme_test.go).
//
// ParseTokenizer would hand the library only configurations measured 100 %
// identical to Hugging Face on the test corpus (TestLibraryParityDecidesSupport
// enforces that). None is today: every configuration measured differs
// (libraryMeasured, .notes/sugarme.md), so those models are still refused
// with ErrUnsupported, and libraryTokenizer serves the tests' cross-checks.
//
// The guards, whatever the configuration:
//   - a panic inside the library on one document becomes that document's
//     error, bad input with reason "bad_input" naming the library (the same
//     text panics it again, so retrying cannot help); the other documents
//     are unaffected;
//   - encodeAll runs at most `workers` goroutines, never the library's
//     EncodeBatch, which starts one goroutine per input.
//
// What the guards cannot catch: the library calls log.Fatal on some internal
// inconsistencies (normalizer/normalized.go, added-vocabulary.go), which
// exits the process; recover() does not see it.
type libraryTokenizer struct {
	tk      *tokenizer.Tokenizer
	workers int

	inFlight, peakInFlight atomic.Int32 // calls into the library now / at most so far
}

// newLibraryTokenizer reads a tokenizer.json with the library. workers
// bounds encodeAll's goroutines (0: GOMAXPROCS). The library's reader panics
// on some malformed files (type assertions on JSON values); that is returned
// as an error.
func newLibraryTokenizer(data []byte, workers int) (l *libraryTokenizer, err error) {
	if workers < 0 {
		return nil, fmt.Errorf("%s: workers must be 0 (GOMAXPROCS) or positive, got %d", libraryName, workers)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("tokenizer.json: %s could not read it: %v", libraryName, r)
		}
	}()
	tk, err := pretrained.FromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %s: %w", libraryName, err)
	}
	return &libraryTokenizer{tk: tk, workers: workers}, nil
}

// encode tokenises one document. Invalid UTF-8 is replaced as Encode does
// (U+FFFD per maximal invalid subsequence). A panic in the library is
// returned as bad input naming the library.
func (l *libraryTokenizer) encode(doc []byte, addSpecial bool) (enc Encoding, err error) {
	text := string(doc)
	if !utf8.Valid(doc) {
		text = string(appendReplacingInvalid(nil, doc))
	}
	for n := l.inFlight.Add(1); ; {
		p := l.peakInFlight.Load()
		if n <= p || l.peakInFlight.CompareAndSwap(p, n) {
			break
		}
	}
	defer l.inFlight.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			enc, err = Encoding{}, preprocess.Reject(preprocess.ReasonOther, "tokenizer library %s panicked on this text: %v", libraryName, r)
		}
	}()
	e, err := l.tk.EncodeSingle(text, addSpecial)
	if err != nil {
		return Encoding{}, preprocess.Reject(preprocess.ReasonOther, "tokenizer library %s: %v", libraryName, err)
	}
	enc.IDs = make([]int32, len(e.Ids))
	enc.TypeIDs = make([]int32, len(e.Ids))
	for i, id := range e.Ids {
		enc.IDs[i] = int32(id)
		if i < len(e.TypeIds) {
			enc.TypeIDs[i] = int32(e.TypeIds[i])
		}
	}
	return enc, nil
}

// encodeAll tokenises docs on at most l.workers goroutines, each taking the
// next document in turn. errs[i] is set for a document that failed (see
// encode); a cancelled context stops it early with ctx's error.
func (l *libraryTokenizer) encodeAll(ctx context.Context, docs [][]byte, addSpecial bool) (encs []Encoding, errs []error, err error) {
	encs = make([]Encoding, len(docs))
	errs = make([]error, len(docs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(l.workers, len(docs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(docs) {
					return
				}
				encs[i], errs[i] = l.encode(docs[i], addSpecial)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", libraryName, err)
	}
	return encs, errs, nil
}

// libraryMeasured is, for each model sugarme implements and stoker does
// not, the best agreement with Hugging Face measured on the corpus sample
// (testdata/make_sugarme.sh, .notes/sugarme.md). None is 100 %, so
// ParseTokenizer refuses them and says why.
var libraryMeasured = map[string]string{
	"WordLevel": "99.19 % at best (WhitespaceSplit, no normalizer); NBSP and other Unicode spaces",
	"Unigram":   "85.44 % (Metaspace: tabs become ▁; Viterbi ties broken differently) and takes minutes on a 64 KB line",
	"BPE":       "97.82 % (plain BPE over GPT-2's merges: wrong merge order on runs such as \"!!!\") and takes minutes on a 20,000-character word",
}

// libraryNote is the part of a refusal that says why sugarme is not used
// for model, or "" for models it does not implement.
func libraryNote(model string) string {
	m, ok := libraryMeasured[model]
	if !ok {
		return ""
	}
	return fmt.Sprintf("; %s implements %s but matched Hugging Face on %s of the test documents, see .notes/sugarme.md", libraryName, model, m)
}
