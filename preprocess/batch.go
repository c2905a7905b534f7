package preprocess

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Item is one raw input: an image file's bytes or one text document.
type Item struct {
	// ID names the item in errors, dead letters and the output's metadata.
	ID   string
	Data []byte
}

// ErrBadInput marks an item that can never be processed (undecodable,
// over a limit, invalid text). Callers dead-letter such items instead of
// retrying them. Test with errors.Is.
var ErrBadInput = errors.New("bad input")

// ItemError is the failure of one item of a batch. Its Err wraps
// ErrBadInput when retrying cannot help.
type ItemError struct {
	Index int    // position of the item in the batch given to Process
	ID    string // the item's ID
	Err   error
}

func (e *ItemError) Error() string { return fmt.Sprintf("item %q: %v", e.ID, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }

// BadInput returns an error wrapping ErrBadInput with a reason a person understands.
func BadInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// Batch is what a Processor makes of a batch of items: one tensor row per
// item that succeeded, in the order of IDs, and the items that failed.
type Batch struct {
	Pipeline string
	IDs      []string
	Tensors  []Tensor
	// RowFacts holds per-row metadata worth publishing with the tensors,
	// keyed by name (for example "original_size" → [][2]int{{h, w}, …}).
	// Each value is a slice with one element per row.
	RowFacts map[string][]any
	Failed   []ItemError
	// Timings is the time this batch spent in each stage, keyed by stage
	// name (StageDecode, StageTransform, StageUpload, StageKernel,
	// StageDownload). Stages that run side by side on the CPU's threads
	// share the batch's wall time in proportion to their CPU time.
	Timings map[string]time.Duration

	release []func() // see OnRelease
}

// Stage names a Processor may report in Batch.Timings.
const (
	StageDecode    = "decode"    // decode or tokenise on the CPU
	StageTransform = "transform" // resize, crop and normalise on the CPU
	StageUpload    = "upload"
	StageKernel    = "kernel"
	StageDownload  = "download"
)

// Len is the number of rows (successful items).
func (b *Batch) Len() int { return len(b.IDs) }

// Rows returns the batch restricted to rows [i, j): tensors and facts are
// sliced, failures are not carried.
func (b *Batch) Rows(i, j int) *Batch {
	out := &Batch{Pipeline: b.Pipeline, IDs: b.IDs[i:j], RowFacts: make(map[string][]any, len(b.RowFacts))}
	for _, t := range b.Tensors {
		out.Tensors = append(out.Tensors, t.Rows(i, j))
	}
	for k, v := range b.RowFacts {
		out.RowFacts[k] = v[i:j]
	}
	return out
}

// Processor turns a batch of raw items into tensors. A bad item is reported
// in Batch.Failed and does not fail the batch; a returned error means the
// whole batch failed for a reason that may pass (out of device memory, a
// cancelled context) and the batch should be retried later.
type Processor interface {
	Process(ctx context.Context, items []Item) (*Batch, error)
}

// Reason codes classify bad input for metrics and dead-letter headers. They
// are few and fixed so they can be Prometheus label values.
const (
	ReasonEmpty         = "empty"              // zero bytes
	ReasonTooLarge      = "too_large"          // over the per-item byte limit
	ReasonTooManyPixels = "too_many_pixels"    // header dimensions over max_pixels
	ReasonUnsupported   = "unsupported_format" // not a format the pipeline reads
	ReasonCorrupt       = "corrupt"            // truncated or undecodable
	ReasonInvalidText   = "invalid_utf8"       // text that is not valid UTF-8
	ReasonOther         = "bad_input"          // any other bad input
)

// Rejection is bad input with a reason code. It matches ErrBadInput.
type Rejection struct {
	Code string // one of the Reason constants
	Msg  string // what was wrong, for a person
}

func (r *Rejection) Error() string        { return r.Msg }
func (r *Rejection) Is(target error) bool { return target == ErrBadInput }

// Reject returns bad input classified under code.
func Reject(code, format string, args ...any) error {
	return &Rejection{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Reason returns the rejection's code.
func (r *Rejection) Reason() string { return r.Code }

// Reasoner is implemented by bad-input errors that know their reason code.
type Reasoner interface{ Reason() string }

// ReasonOf returns the reason code of a bad-input error: the code of the
// first error in its chain that implements Reasoner, or ReasonOther for
// other errors matching ErrBadInput, or "" for errors that are not bad input.
func ReasonOf(err error) string {
	var r Reasoner
	if errors.As(err, &r) {
		return r.Reason()
	}
	if errors.Is(err, ErrBadInput) {
		return ReasonOther
	}
	return ""
}

// ShareWallTime splits wall, the time a batch took, between stages that ran
// side by side on several threads, in proportion to the time each stage
// took summed over the threads (busy). Stages with no busy time are left
// out; with none at all the result is nil.
func ShareWallTime(wall time.Duration, busy map[string]time.Duration) map[string]time.Duration {
	var total time.Duration
	for _, d := range busy {
		total += d
	}
	if total <= 0 {
		return nil
	}
	out := make(map[string]time.Duration, len(busy))
	for stage, d := range busy {
		if d > 0 {
			out[stage] = time.Duration(float64(wall) * float64(d) / float64(total))
		}
	}
	return out
}
