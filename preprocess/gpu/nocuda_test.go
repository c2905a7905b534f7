//go:build !cuda

package gpu

import (
	"errors"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess/image"
)

func TestWithoutCUDA(t *testing.T) {
	if err := Available(); !errors.Is(err, kernels.ErrNoCUDA) {
		t.Errorf("Available() = %v, want ErrNoCUDA", err)
	}
	if _, err := NewImageProcessor(image.DefaultSpec(), nil, 1); !errors.Is(err, kernels.ErrNoCUDA) {
		t.Errorf("NewImageProcessor = %v, want ErrNoCUDA", err)
	}
	if got := kernels.ErrNoCUDA.Error(); got != "stoker was built without CUDA; rebuild with -tags cuda" {
		t.Errorf("ErrNoCUDA says %q", got)
	}
}
