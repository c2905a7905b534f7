package kernelstest

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
)

func TestFloat16Value(t *testing.T) {
	cases := []struct {
		name string
		bits uint16
		want float64
	}{
		{"one", 0x3c00, 1},
		{"minus two", 0xc000, -2},
		{"largest", 0x7bff, 65504},
		{"smallest subnormal", 0x0001, math.Pow(2, -24)},
		{"one third", 0x3555, 0.333251953125},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Float16Value(tc.bits); got != tc.want {
				t.Errorf("Float16Value(%#04x) = %v, want %v", tc.bits, got, tc.want)
			}
		})
	}
	if !math.IsNaN(Float16Value(0xffff)) {
		t.Error("Float16Value(0xffff) is not NaN")
	}
}

func TestCompare(t *testing.T) {
	f32 := func(vs ...float32) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	cases := []struct {
		name       string
		got, want  []byte
		within     bool
		mismatched int
		nan        int
	}{
		{"identical", f32(1, 2, 3), f32(1, 2, 3), true, 0, 0},
		{"small differences", f32(1.001, 2, 3), f32(1, 2, 3), true, 1, 0},
		{"one big difference", f32(1.5, 2, 3), f32(1, 2, 3), false, 1, 0},
		{"unwritten element", f32(1, float32(math.NaN()), 3), f32(1, 2, 3), false, 1, 1},
		{"mean too large", f32(1.01, 2.01, 3.01), f32(1, 2, 3), false, 3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Compare(kernels.Float32, tc.got, tc.want)
			if d.WithinTolerance() != tc.within || d.Mismatched != tc.mismatched || d.NaN != tc.nan {
				t.Errorf("Compare = %v: within %v, want within %v, %d mismatched, %d NaN",
					d, d.WithinTolerance(), tc.within, tc.mismatched, tc.nan)
			}
		})
	}
}

func TestPoisonMakesNaN(t *testing.T) {
	for _, dt := range []kernels.DType{kernels.Float32, kernels.Float16, kernels.BFloat16} {
		b := make([]byte, dt.Size())
		Poison(b, 0xff)
		if v := Value(dt, b); !math.IsNaN(v) {
			t.Errorf("%v poisoned with 0xff reads %v, want NaN", dt, v)
		}
	}
}
