//go:build !cuda

package kernels

import "context"

// WordPiece stands in for a tokenizer loaded on a GPU in a build without
// the cuda tag; LoadWordPiece returns ErrNoCUDA.
type WordPiece struct{}

// LoadWordPiece returns ErrNoCUDA: this build has no CUDA support.
func (d *Device) LoadWordPiece(ctx context.Context, t *WordPieceTables, slots int) (*WordPiece, error) {
	return nil, ErrNoCUDA
}

// Tables returns nil.
func (w *WordPiece) Tables() *WordPieceTables { return nil }

// Tokenize returns ErrNoCUDA.
func (w *WordPiece) Tokenize(ctx context.Context, j *TextJob) error { return ErrNoCUDA }

// Close does nothing.
func (w *WordPiece) Close() error { return nil }
