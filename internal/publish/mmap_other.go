//go:build !unix

package publish

import (
	"errors"
	"os"
)

func mapFile(*os.File, int64) ([]byte, func() error, error) {
	return nil, nil, errors.New("mmap: not supported on this system")
}

func populate([]byte) {}
