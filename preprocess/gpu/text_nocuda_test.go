//go:build !cuda

package gpu

import (
	"errors"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess/text"
)

func TestTextWithoutCUDA(t *testing.T) {
	if _, err := NewTextProcessor(text.DefaultSpec(), nil, 1); !errors.Is(err, kernels.ErrNoCUDA) {
		t.Errorf("NewTextProcessor = %v, want ErrNoCUDA", err)
	}
	var dev *kernels.Device
	if _, err := dev.LoadWordPiece(t.Context(), &kernels.WordPieceTables{}, 0); !errors.Is(err, kernels.ErrNoCUDA) {
		t.Errorf("LoadWordPiece = %v, want ErrNoCUDA", err)
	}
}
