//go:build cuda

package gpu

import (
	"context"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// poisoning wraps the device so that each batch's output starts as NaN.
type poisoning struct{ dev *kernels.Device }

func (p poisoning) ResizeCropNormalize(ctx context.Context, j *kernels.Job) error {
	kernelstest.Poison(j.Dst, 0xff)
	return p.dev.ResizeCropNormalize(ctx, j)
}

func TestDeviceProcessMatchesCPUProcessor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Available(); err != nil {
		t.Fatalf("Available() = %v on the GPU machine", err)
	}
	dev, err := kernels.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := NewImageProcessor(image.DefaultSpec(), dev, 2); err != nil {
		t.Fatalf("NewImageProcessor: %v", err)
	}
	checkProcessor(t, poisoning{dev}, testItems(t), false)
}
