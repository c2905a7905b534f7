package config

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (errors.Is) by every *FieldError: the configuration
// is wrong, as opposed to unreadable.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is one problem with one key of the configuration.
type FieldError struct {
	Source string // the file, when known
	Line   int    // the key's line in Source, when known
	Path   string // the key's path: pipelines[1].batch.max_items
	Reason string // what is wrong: must be > 0, got 0
}

func (e *FieldError) Error() string {
	msg := e.Path + ": " + e.Reason
	if e.Path == "" {
		msg = e.Reason
	}
	switch {
	case e.Source != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, msg)
	case e.Source != "":
		return e.Source + ": " + msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, msg)
	}
	return msg
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// joinFieldErrors returns nil for no errors, the error itself for one, and
// errors.Join of them otherwise (one per line).
func joinFieldErrors(errs []*FieldError) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// FieldErrors returns the *FieldError values inside err (one, or several
// joined), for callers that present them one by one.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var fe *FieldError
	if errors.As(err, &fe) && fe == err {
		return []*FieldError{fe}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
	} else if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}
