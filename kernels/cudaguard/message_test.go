package cudaguard

import (
	"strings"
	"testing"
)

func TestMessage(t *testing.T) {
	cases := []struct {
		name   string
		f      Failure
		detail string
		code   int
		want   []string
	}{
		{"no library", NoLibrary, "libcuda.so.1: cannot open shared object file", 0,
			[]string{"no CUDA driver library", "cannot open shared object file"}},
		{"init failed", InitFailed, "CUDA_ERROR_NO_DEVICE", 100,
			[]string{"cuInit returned CUDA_ERROR_NO_DEVICE (100)"}},
		{"zero devices", NoDevice, "", 0,
			[]string{"reported 0 devices"}},
		{"count failed", NoDevice, "CUDA_ERROR_NOT_INITIALIZED", 3,
			[]string{"cuDeviceGetCount returned CUDA_ERROR_NOT_INITIALIZED (3)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Message(tc.f, tc.detail, tc.code)
			for _, w := range append(tc.want, Advice, "stoker (cuda build): ") {
				if !strings.Contains(got, w) {
					t.Errorf("Message(%v, %q, %d) = %q, want it to contain %q", tc.f, tc.detail, tc.code, got, w)
				}
			}
			if !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
				t.Errorf("Message = %q, want exactly one line", got)
			}
		})
	}
}
