//go:build cuda

package kernels

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>

static const char *stoker_cu_error_name(CUresult r) {
	const char *s = "unknown CUresult";
	cuGetErrorName(r, &s);
	return s;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// gorgonia.org/cu v0.9.6 does not wrap cuMemAllocHost, so pinned host
// memory is allocated here. Like every driver call these run on the
// Device's owner thread, with its context current.

// driverError is a CUresult from a call this package makes directly.
type driverError struct {
	code int
	name string
}

func (e driverError) Error() string { return fmt.Sprintf("%s (%d)", e.name, e.code) }

// Is lets errors.Is match a driverError against gorgonia's result values
// (cu.OutOfMemory, ...), which carry the same codes.
func (e driverError) Is(target error) bool {
	switch target {
	case cu.OutOfMemory:
		return e.code == int(C.CUDA_ERROR_OUT_OF_MEMORY)
	}
	return false
}

func resultError(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return driverError{code: int(r), name: C.GoString(C.stoker_cu_error_name(r))}
}

// allocPinned returns size bytes of page-locked host memory.
func allocPinned(size int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := resultError(C.cuMemAllocHost(&p, C.size_t(size))); err != nil {
		return nil, err
	}
	return p, nil
}

// freePinned releases memory from allocPinned; nil is ignored.
func freePinned(p unsafe.Pointer) error {
	if p == nil {
		return nil
	}
	return resultError(C.cuMemFreeHost(p))
}
