//go:build unix

package publish

import (
	"errors"
	"math"
	"os"
	"syscall"
)

// mapFile maps a whole file read-only. The caller unmaps it with the
// returned function once nothing refers to the bytes any more.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if size <= 0 || size > math.MaxInt {
		return nil, nil, errors.New("mmap: empty or too large file")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	_ = syscall.Madvise(b, syscall.MADV_SEQUENTIAL) // a hint only
	return b, func() error { return syscall.Munmap(b) }, nil
}

// madvPopulateRead (Linux 5.14+) maps a range's pages in one call instead of
// one page fault per few pages as they are first touched.
const madvPopulateRead = 22

// populate maps b's pages ahead of use; a hint only (older kernels refuse it).
func populate(b []byte) { _ = syscall.Madvise(b, madvPopulateRead) }
