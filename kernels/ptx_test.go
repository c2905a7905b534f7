package kernels

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestPTXMatchesLauncher checks the committed PTX: it is marked generated,
// targets compute_75's ISA (sm_75), and its entry point takes the 15
// parameters, in the order and widths, that the cuda launcher passes
// (4 pointers, 5 ints, 6 floats).
func TestPTXMatchesLauncher(t *testing.T) {
	b, err := os.ReadFile("resize_crop_normalize.ptx")
	if err != nil {
		t.Fatal(err)
	}
	ptx := string(b)
	first, _, _ := strings.Cut(ptx, "\n")
	if !strings.HasPrefix(first, "// Code generated ") || !strings.HasSuffix(first, "DO NOT EDIT.") {
		t.Errorf("first line %q is not a generated-code marker", first)
	}
	if !strings.Contains(ptx, ".target sm_75") {
		t.Error("PTX does not target sm_75 (compute_75)")
	}
	entry := regexp.MustCompile(`(?s)\.entry resize_crop_normalize\((.*?)\)`).FindStringSubmatch(ptx)
	if entry == nil {
		t.Fatal("no .entry resize_crop_normalize in the PTX")
	}
	var types []string
	for _, m := range regexp.MustCompile(`\.param \.(\w+) `).FindAllStringSubmatch(entry[1], -1) {
		types = append(types, m[1])
	}
	want := "u64 u64 u64 u64 u32 u32 u32 u32 u32 f32 f32 f32 f32 f32 f32"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("entry parameters %q, want %q", got, want)
	}
}

func TestImageDescriptorLayout(t *testing.T) {
	// Pack writes rcn_image fields at fixed offsets; check them by packing
	// a job and reading the table back.
	x := AxisPlan{Out: 1, Taps: 1, Start: []int32{1}, Count: []int32{1}, Coeffs: []int32{1 << PrecisionBits}}
	y := AxisPlan{Out: 1, Taps: 1, Start: []int32{0}, Count: []int32{1}, Coeffs: []int32{1 << PrecisionBits}}
	j := &Job{OutW: 1, OutH: 1, DType: Uint8, Dst: make([]byte, 6), Images: []Image{
		{Width: 2, Height: 1, Pix: []byte{1, 2, 3, 4, 5, 6}, X: x, Y: y},
		{Width: 3, Height: 1, Pix: []byte{7, 8, 9, 10, 11, 12, 13, 14, 15}, X: x, Y: y},
	}}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, j.Packing().Size)
	p := j.Pack(buf, 2)
	if got := string(buf[:p.PixBytes]); got != string([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}) {
		t.Errorf("packed pixels %v", buf[:p.PixBytes])
	}
	le := func(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
	d1 := buf[p.ImagesOffset+imageDescBytes:]
	if src, w, h := le(d1[0:]), le(d1[8:]), le(d1[12:]); src != 6 || w != 3 || h != 1 {
		t.Errorf("second descriptor: src %d, %dx%d; want 6, 3x1", src, w, h)
	}
	plans := buf[p.PlansOffset:]
	if xp := le(d1[16:]); le(plans[4*xp:]) != 1 || le(plans[4*(xp+1):]) != 1 {
		t.Errorf("second image's x plan at word %d does not read taps 1, start 1", xp)
	}
}

func TestValidateRejects(t *testing.T) {
	plan := func(start, count int32) AxisPlan {
		return AxisPlan{Out: 1, Taps: 2, Start: []int32{start}, Count: []int32{count}, Coeffs: []int32{1 << 21, 1 << 21}}
	}
	ok := func() *Job {
		return &Job{OutW: 1, OutH: 1, Dst: make([]byte, 12), Images: []Image{
			{Width: 2, Height: 2, Pix: make([]byte, 12), X: plan(0, 2), Y: plan(0, 2)}}}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid job rejected: %v", err)
	}
	cases := []struct {
		name     string
		breakJob func(j *Job)
		want     string
	}{
		{"plan reads past the right edge", func(j *Job) { j.Images[0].X = plan(1, 2) }, "horizontal plan: sample 0 reads [1, 3) of 2"},
		{"plan reads before the top", func(j *Job) { j.Images[0].Y = plan(-1, 1) }, "vertical plan: sample 0 reads [-1, 0)"},
		{"count over taps", func(j *Job) { j.Images[0].X = plan(0, 3) }, "horizontal plan"},
		{"empty window", func(j *Job) { j.Images[0].X = plan(0, 0) }, "horizontal plan"},
		{"short pixels", func(j *Job) { j.Images[0].Pix = j.Images[0].Pix[:11] }, "11 pixel bytes"},
		{"stride too short", func(j *Job) { j.Images[0].Stride = 5 }, "stride 5"},
		{"small output", func(j *Job) { j.Dst = j.Dst[:11] }, "output buffer holds 11 bytes"},
		{"wrong plan length", func(j *Job) { j.OutW = 2; j.Dst = make([]byte, 24) }, "1 output samples, the job wants 2"},
		{"unknown dtype", func(j *Job) { j.DType = 9 }, "unknown dtype"},
		{"unknown layout", func(j *Job) { j.Layout = 2 }, "unknown layout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := ok()
			tc.breakJob(j)
			err := j.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
