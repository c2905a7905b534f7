package preprocess

import (
	"testing"
	"time"
)

func TestShareWallTime(t *testing.T) {
	got := ShareWallTime(100*time.Millisecond, map[string]time.Duration{
		StageDecode: 150 * time.Millisecond, StageTransform: 50 * time.Millisecond, StageKernel: 0,
	})
	want := map[string]time.Duration{StageDecode: 75 * time.Millisecond, StageTransform: 25 * time.Millisecond}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
	if got := ShareWallTime(time.Second, map[string]time.Duration{StageDecode: 0}); got != nil {
		t.Errorf("no busy time: got %v, want nil", got)
	}
}
