package publish

import (
	"errors"
	"io"
	"sync/atomic"
)

// mapping is a memory-mapped input shared by the records sliced from it:
// it is unmapped when the reader and every such record have released it.
type mapping struct {
	refs  atomic.Int64
	unmap func() error
}

func newMapping(unmap func() error) *mapping {
	m := &mapping{unmap: unmap}
	m.refs.Store(1) // the reader's
	return m
}

// ref takes a reference for one record.
func (m *mapping) ref() *releaser {
	m.refs.Add(1)
	return &releaser{m: m}
}

func (m *mapping) release() {
	if m.refs.Add(-1) == 0 {
		m.unmap()
	}
}

// releaser drops a record's reference once, however often Release is called.
type releaser struct {
	done atomic.Bool
	m    *mapping
}

// Release says the record's Data is no longer used. Records read from a
// memory-mapped file (tar shards and TFRecord files, unless
// ReadOptions.NoMmap) alias the mapping, which is unmapped once the reader
// is closed and all its records are released: Data must not be used after
// Release. For other records Release does nothing. Calling it more than
// once is harmless.
func (r Record) Release() {
	if r.rel != nil && r.rel.done.CompareAndSwap(false, true) {
		r.rel.m.release()
	}
}

// byteSource reads an input held in memory (a mapped file), letting readers
// slice records out of it instead of copying them.
type byteSource struct {
	b    []byte
	off  int64
	read *atomic.Int64 // input bytes consumed, for progress
	m    *mapping      // nil when b is not mapped
	// populated is where the range mapped ahead of the reader ends.
	populated int64
}

// populateWindow is how far ahead of the reader a mapping's pages are
// mapped, so records and headers do not fault page by page.
const populateWindow = 8 << 20

// ahead maps the pages of the window after off once the reader is past the
// middle of the previous one.
func (s *byteSource) ahead(off int64) {
	if s.m == nil || off+populateWindow/2 < s.populated || s.populated >= int64(len(s.b)) {
		return
	}
	start := max(s.populated, off)
	end := min(start+populateWindow, int64(len(s.b)))
	populate(s.b[start:end])
	s.populated = end
}

func (s *byteSource) Read(p []byte) (int, error) {
	if s.off >= int64(len(s.b)) {
		return 0, io.EOF
	}
	s.ahead(s.off)
	n := copy(p, s.b[s.off:])
	s.off += int64(n)
	s.read.Add(int64(n))
	return n, nil
}

// Seek lets archive/tar skip member data without reading it.
func (s *byteSource) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.off + offset
	case io.SeekEnd:
		abs = int64(len(s.b)) + offset
	default:
		return 0, errors.New("byteSource: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("byteSource: negative position")
	}
	if abs > s.off {
		s.read.Add(min(abs, int64(len(s.b))) - s.off)
	}
	s.off = abs
	s.ahead(abs)
	return abs, nil
}

// slice returns n bytes at off without copying, and a reference on the
// mapping for the record that will hold them.
func (s *byteSource) slice(off, n int64) ([]byte, *releaser, bool) {
	if off < 0 || n < 0 || off+n > int64(len(s.b)) {
		return nil, nil, false
	}
	b := s.b[off : off+n : off+n]
	if s.m == nil {
		return b, nil, true
	}
	return b, s.m.ref(), true
}
