package metrics

import (
	"testing"

	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// TestTensorNamesMatchProcessors keeps ObserveBatch's names in step with
// what the processors publish.
func TestTensorNamesMatchProcessors(t *testing.T) {
	for _, tc := range []struct{ name, ours, theirs string }{
		{"image tensor", TensorPixelValues, image.TensorName},
		{"text ids", TensorInputIDs, text.InputIDs},
		{"text mask", TensorAttentionMask, text.AttentionMask},
	} {
		if tc.ours != tc.theirs {
			t.Errorf("%s: metrics reads %q, the processor publishes %q", tc.name, tc.ours, tc.theirs)
		}
	}
}
