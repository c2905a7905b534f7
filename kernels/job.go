package kernels

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Layout is the order of the dimensions of one output row. The values are
// the kernel's RCN_NCHW and RCN_NHWC.
type Layout int32

// The output layouts.
const (
	NCHW Layout = 0 // [batch, 3, height, width]
	NHWC Layout = 1 // [batch, height, width, 3]
)

func (l Layout) String() string {
	switch l {
	case NCHW:
		return "NCHW"
	case NHWC:
		return "NHWC"
	}
	return fmt.Sprintf("Layout(%d)", int32(l))
}

// DType is the element type of the output tensor. The values are the
// kernel's RCN_F32, RCN_F16, RCN_BF16 and RCN_U8.
type DType int32

// The output element types. Uint8 stores the resized pixels without
// scaling or normalisation; Float16 and BFloat16 round to nearest even.
const (
	Float32  DType = 0
	Float16  DType = 1
	BFloat16 DType = 2
	Uint8    DType = 3
)

// Size is the number of bytes of one element, or 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float16, BFloat16:
		return 2
	case Uint8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Uint8:
		return "uint8"
	}
	return fmt.Sprintf("DType(%d)", int32(d))
}

// PrecisionBits is the fixed-point precision of AxisPlan coefficients: a
// coefficient c weighs an input sample by c / 2^PrecisionBits.
const PrecisionBits = 22

// AxisPlan is the resampling plan of one axis, computed on the host by the
// CPU image package (image.PlanAxis) so that both paths use the same
// coefficients. Output sample i reads input samples
// Start[i] .. Start[i]+Count[i]-1 with weights Coeffs[i*Taps : i*Taps+Count[i]].
type AxisPlan struct {
	Out, Taps int
	Start     []int32
	Count     []int32
	Coeffs    []int32
}

// Image is one decoded image of a batch (or the part of it the plans
// read) and its two resampling plans, whose Start indices count from the
// image's first column and row.
type Image struct {
	Width, Height int
	// Pix holds the RGB8 pixels: row y starts at Pix[y*Stride] and has
	// Width*3 bytes. Pack copies only those bytes, so a caller can pass a
	// window of a bigger image without copying it first.
	Pix []byte
	// Stride is the distance in bytes between rows; 0 means Width*3.
	Stride int
	X, Y   AxisPlan
}

// stride is Stride with its default applied.
func (im *Image) stride() int {
	if im.Stride == 0 {
		return im.Width * 3
	}
	return im.Stride
}

// packedBytes is the size of the image once packed: Width*Height*3.
func (im *Image) packedBytes() int { return im.Width * im.Height * 3 }

// Job is one batch for ResizeCropNormalize. Every image's X plan has
// OutW samples and its Y plan OutH samples. The output row of image i is
// written to Dst[i*RowBytes() : (i+1)*RowBytes()].
type Job struct {
	Images     []Image
	OutW, OutH int
	Layout     Layout
	DType      DType
	// Mean and Std normalise channel c: (v/255 - Mean[c]) / Std[c]. Unused
	// for Uint8.
	Mean, Std [3]float32
	// Dst receives the batch tensor; it must hold at least OutputBytes().
	Dst []byte
	// Timing, when not nil, receives what the device measured with CUDA
	// events. Left untouched by the emulator.
	Timing *Timing
}

// Timing is what one batch cost on the device, measured with CUDA events
// on the batch's stream.
type Timing struct {
	Upload   time.Duration // host-to-device copy of pixels, descriptors and plans
	Kernel   time.Duration // the resize_crop_normalize launch
	Download time.Duration // device-to-host copy of the output tensor
	// InputBytes is what was uploaded, OutputBytes what was downloaded.
	InputBytes, OutputBytes int64
	// KernelReadBytes is the pixel bytes the kernel needed at least once
	// (the rows and columns the crop keeps) plus its plans and descriptors;
	// KernelWriteBytes is the output. Together they are the kernel's
	// minimum DRAM traffic.
	KernelReadBytes, KernelWriteBytes int64
}

// RowBytes is the size in bytes of one image's output.
func (j *Job) RowBytes() int { return 3 * j.OutW * j.OutH * j.DType.Size() }

// OutputBytes is the size in bytes of the whole output tensor.
func (j *Job) OutputBytes() int { return len(j.Images) * j.RowBytes() }

// imageDescBytes is sizeof(rcn_image) in resize_crop_normalize.h.
const imageDescBytes = 32

// MaxBatchImages is the most images one launch takes: each image is one
// z-slice of the grid, and CUDA limits gridDim.z to 65535.
const MaxBatchImages = 65535

// Packing says where each part of a job lies in the one buffer the kernel
// reads: the pixels of every image back to back, then the descriptor
// table, then the plans (int32, little-endian). Offsets are aligned to 16.
type Packing struct {
	PixBytes     int // pixels of every image
	ImagesOffset int // rcn_image table
	PlansOffset  int // plans
	PlanWords    int // int32 words of plans
	Size         int // bytes of the whole buffer
}

func align16(n int) int { return (n + 15) &^ 15 }

func planWords(p *AxisPlan) int { return 1 + 2*p.Out + p.Out*p.Taps }

// Packing computes where the parts of j go. Call Validate first.
func (j *Job) Packing() Packing {
	var p Packing
	for i := range j.Images {
		im := &j.Images[i]
		p.PixBytes += im.packedBytes()
		p.PlanWords += planWords(&im.X) + planWords(&im.Y)
	}
	p.ImagesOffset = align16(p.PixBytes)
	p.PlansOffset = align16(p.ImagesOffset + imageDescBytes*len(j.Images))
	p.Size = align16(p.PlansOffset + 4*p.PlanWords)
	return p
}

// Validate checks everything the kernel relies on to stay inside its
// buffers: sizes, plan lengths, and that every plan reads only samples
// inside its image. It names the image and the field at fault.
func (j *Job) Validate() error {
	if j.OutW <= 0 || j.OutH <= 0 {
		return fmt.Errorf("kernels: output size %dx%d is not positive", j.OutW, j.OutH)
	}
	if j.Layout != NCHW && j.Layout != NHWC {
		return fmt.Errorf("kernels: unknown layout %v", j.Layout)
	}
	if j.DType.Size() == 0 {
		return fmt.Errorf("kernels: unknown dtype %v", j.DType)
	}
	if len(j.Images) > MaxBatchImages {
		return fmt.Errorf("kernels: batch of %d images exceeds the grid's limit of %d", len(j.Images), MaxBatchImages)
	}
	if len(j.Dst) < j.OutputBytes() {
		return fmt.Errorf("kernels: output buffer holds %d bytes, the batch needs %d", len(j.Dst), j.OutputBytes())
	}
	total := 0
	for i := range j.Images {
		im := &j.Images[i]
		if im.Width <= 0 || im.Height <= 0 {
			return fmt.Errorf("kernels: image %d: size %dx%d is not positive", i, im.Width, im.Height)
		}
		if st := im.stride(); st < im.Width*3 {
			return fmt.Errorf("kernels: image %d: stride %d is shorter than a row of %d RGB pixels", i, st, im.Width)
		} else if want := (im.Height-1)*st + im.Width*3; len(im.Pix) < want {
			return fmt.Errorf("kernels: image %d: %d pixel bytes for %dx%d RGB with stride %d, want at least %d", i, len(im.Pix), im.Width, im.Height, st, want)
		}
		if err := checkPlan(&im.X, j.OutW, im.Width); err != nil {
			return fmt.Errorf("kernels: image %d: horizontal plan: %w", i, err)
		}
		if err := checkPlan(&im.Y, j.OutH, im.Height); err != nil {
			return fmt.Errorf("kernels: image %d: vertical plan: %w", i, err)
		}
		total += im.packedBytes()
		if total < 0 || total > 1<<40 {
			return fmt.Errorf("kernels: batch pixels overflow at image %d", i)
		}
	}
	if words := j.Packing().PlanWords; words > 1<<31-1 {
		return fmt.Errorf("kernels: plans of %d words exceed int32 indexing", words)
	}
	return nil
}

func checkPlan(p *AxisPlan, out, in int) error {
	switch {
	case p.Out != out:
		return fmt.Errorf("%d output samples, the job wants %d", p.Out, out)
	case p.Taps <= 0:
		return fmt.Errorf("%d taps", p.Taps)
	case len(p.Start) != out || len(p.Count) != out || len(p.Coeffs) != out*p.Taps:
		return fmt.Errorf("lengths start=%d count=%d coeffs=%d, want %d, %d, %d",
			len(p.Start), len(p.Count), len(p.Coeffs), out, out, out*p.Taps)
	}
	for i := 0; i < out; i++ {
		s, n := int(p.Start[i]), int(p.Count[i])
		if s < 0 || n < 1 || n > p.Taps || s+n > in {
			return fmt.Errorf("sample %d reads [%d, %d) of %d with %d taps", i, s, s+n, in, p.Taps)
		}
	}
	return nil
}

// Pack writes the job's pixels, descriptor table and plans into buf, which
// must hold at least Packing().Size bytes. The pixel copies are spread over
// up to `workers` goroutines (all finished when Pack returns). Call
// Validate first.
func (j *Job) Pack(buf []byte, workers int) Packing {
	p := j.Packing()
	buf = buf[:p.Size]
	offsets := make([]int, len(j.Images))
	off := 0
	for i := range j.Images {
		offsets[i] = off
		off += j.Images[i].packedBytes()
	}
	copyPixels(buf, j.Images, offsets, workers)

	le := binary.LittleEndian
	plan := 0
	words := buf[p.PlansOffset:]
	putPlan := func(a *AxisPlan) int {
		at := plan
		w := words[4*plan:]
		le.PutUint32(w, uint32(a.Taps))
		for i, v := range a.Start {
			le.PutUint32(w[4*(1+i):], uint32(v))
		}
		for i, v := range a.Count {
			le.PutUint32(w[4*(1+a.Out+i):], uint32(v))
		}
		for i, v := range a.Coeffs {
			le.PutUint32(w[4*(1+2*a.Out+i):], uint32(v))
		}
		plan += planWords(a)
		return at
	}
	for i := range j.Images {
		im := &j.Images[i]
		d := buf[p.ImagesOffset+i*imageDescBytes:]
		le.PutUint64(d[0:], uint64(offsets[i]))
		le.PutUint32(d[8:], uint32(im.Width))
		le.PutUint32(d[12:], uint32(im.Height))
		le.PutUint32(d[16:], uint32(putPlan(&im.X)))
		le.PutUint32(d[20:], uint32(putPlan(&im.Y)))
		le.PutUint64(d[24:], 0)
	}
	return p
}

// copyPixels copies every image's pixels to its offset in buf, splitting
// the images over up to workers goroutines by bytes.
func copyPixels(buf []byte, images []Image, offsets []int, workers int) {
	if workers < 2 || len(images) < 2 {
		for i := range images {
			packImage(buf[offsets[i]:], &images[i])
		}
		return
	}
	if workers > len(images) {
		workers = len(images)
	}
	next := make(chan int, len(images))
	for i := range images {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				packImage(buf[offsets[i]:], &images[i])
			}
		}()
	}
	wg.Wait()
}

// packImage copies im's rows back to back to the start of dst.
func packImage(dst []byte, im *Image) {
	row, st := im.Width*3, im.stride()
	if st == row {
		copy(dst, im.Pix[:im.packedBytes()])
		return
	}
	for y := 0; y < im.Height; y++ {
		copy(dst[y*row:(y+1)*row], im.Pix[y*st:y*st+row])
	}
}

// Block sizes of resize_crop_normalize: RCN_BLOCK_X and RCN_BLOCK_Y.
const (
	BlockX = 32
	BlockY = 8
)

// Geometry is the launch grid of resize_crop_normalize for a job: one
// thread per output pixel, blocks of BlockX×BlockY pixels, one grid layer
// (z) per image. The emulator walks the same grid.
func Geometry(j *Job) (grid, block [3]int) {
	grid = [3]int{(j.OutW + BlockX - 1) / BlockX, (j.OutH + BlockY - 1) / BlockY, len(j.Images)}
	block = [3]int{BlockX, BlockY, 1}
	return grid, block
}

// kernelTraffic is the minimum DRAM traffic of the kernel: every input
// pixel it reads once (the rows the vertical plan touches times the
// columns the horizontal plan touches), the plans and descriptors, and
// the output.
func (j *Job) kernelTraffic(p Packing) (read, write int64) {
	for i := range j.Images {
		im := &j.Images[i]
		rows := int64(span(&im.Y))
		cols := int64(span(&im.X))
		read += rows * cols * 3
	}
	read += int64(p.Size - p.ImagesOffset)
	return read, int64(j.OutputBytes())
}

// span is the number of input samples between the first and the last one
// an axis plan reads.
func span(a *AxisPlan) int {
	lo, hi := int32(1<<31-1), int32(-1)
	for i := 0; i < a.Out; i++ {
		lo = min(lo, a.Start[i])
		hi = max(hi, a.Start[i]+a.Count[i])
	}
	if hi < lo {
		return 0
	}
	return int(hi - lo)
}
