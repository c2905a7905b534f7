package gpu

import (
	"fmt"
	"sync"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// KernelFormat maps an image.Spec's layout and dtype to the kernel's.
func KernelFormat(spec image.Spec) (kernels.Layout, kernels.DType, error) {
	var l kernels.Layout
	switch spec.Layout {
	case image.NCHW:
		l = kernels.NCHW
	case image.NHWC:
		l = kernels.NHWC
	default:
		return 0, 0, fmt.Errorf("gpu: layout %q has no kernel variant", spec.Layout)
	}
	var d kernels.DType
	switch spec.DType {
	case preprocess.Float32:
		d = kernels.Float32
	case preprocess.Float16:
		d = kernels.Float16
	case preprocess.BFloat16:
		d = kernels.BFloat16
	case preprocess.Uint8:
		d = kernels.Uint8
	default:
		return 0, 0, fmt.Errorf("gpu: dtype %q has no kernel variant", spec.DType)
	}
	return l, d, nil
}

// NewJob builds the kernel job that transforms imgs as spec says into dst
// (one row of 3*Crop*Crop elements per image). Each image contributes only
// the window of rows and columns its plans read; the window's pixels stay
// in img.Pix until the device packs them.
func NewJob(spec image.Spec, imgs []*image.RGB, dst []byte) (*kernels.Job, error) {
	views := make([]kernels.Image, len(imgs))
	for i, img := range imgs {
		if img == nil || img.Width <= 0 || img.Height <= 0 {
			return nil, fmt.Errorf("gpu: image %d has no pixels", i)
		}
		if len(img.Pix) < img.Width*img.Height*3 {
			return nil, fmt.Errorf("gpu: image %d: %d pixel bytes for %dx%d RGB", i, len(img.Pix), img.Width, img.Height)
		}
		plan := planImage(spec, img.Width, img.Height)
		stride := img.Width * 3
		views[i] = plan.view(img.Pix[plan.y0*stride+plan.x0*3:], stride)
	}
	return newJob(spec, views, dst)
}

// imagePlan is what the kernel needs to know about a w×h image besides its
// pixels: the window [x0,x1)×[y0,y1) its plans read and the plans, with
// Start relative to the window. It is read-only once built, so images of
// the same size share one.
type imagePlan struct {
	x0, x1, y0, y1 int
	x, y           kernels.AxisPlan
}

// planImage plans a w×h image with image.PlanAxis, as the CPU path does.
func planImage(spec image.Spec, w, h int) *imagePlan {
	rw, rh := spec.ResizedSize(w, h)
	cx, cy := spec.CropOffset(rw, rh)
	x := image.PlanAxis(w, rw, cx, spec.Crop)
	y := image.PlanAxis(h, rh, cy, spec.Crop)
	p := &imagePlan{}
	p.x0, p.x1 = rebase(&x)
	p.y0, p.y1 = rebase(&y)
	p.x, p.y = kernelPlan(&x), kernelPlan(&y)
	return p
}

// view is the kernel's view of the window [x0,x1)×[y0,y1) of an image
// planned by p: pix starts at the window's first pixel and its rows are
// stride bytes apart (0: packed, the window's width×3).
func (p *imagePlan) view(pix []byte, stride int) kernels.Image {
	return kernels.Image{Width: p.x1 - p.x0, Height: p.y1 - p.y0, Pix: pix, Stride: stride, X: p.x, Y: p.y}
}

// newJob builds the job from the windows of decoded images.
func newJob(spec image.Spec, images []kernels.Image, dst []byte) (*kernels.Job, error) {
	l, d, err := KernelFormat(spec)
	if err != nil {
		return nil, err
	}
	return &kernels.Job{
		Images: images,
		OutW:   spec.Crop,
		OutH:   spec.Crop,
		Layout: l,
		DType:  d,
		Mean:   spec.Mean,
		Std:    spec.Std,
		Dst:    dst,
	}, nil
}

// planCache keeps the plans of recently seen image sizes (datasets repeat
// sizes a lot; planning costs about 0.1 ms per image). It forgets
// everything when it holds maxPlans sizes.
type planCache struct {
	mu    sync.Mutex
	plans map[[2]int]*imagePlan
}

const maxPlans = 4096

func (c *planCache) get(spec image.Spec, w, h int) *imagePlan {
	key := [2]int{w, h}
	c.mu.Lock()
	p := c.plans[key]
	c.mu.Unlock()
	if p != nil {
		return p
	}
	p = planImage(spec, w, h)
	c.mu.Lock()
	if c.plans == nil || len(c.plans) >= maxPlans {
		c.plans = make(map[[2]int]*imagePlan)
	}
	c.plans[key] = p
	c.mu.Unlock()
	return p
}

// rebase shifts a plan's Start so that it counts from the first input
// sample the plan reads, and returns that window [first, last).
func rebase(p *image.AxisPlan) (first, last int) {
	first, last = int(^uint(0)>>1), 0
	for i := 0; i < p.Out; i++ {
		first = min(first, int(p.Start[i]))
		last = max(last, int(p.Start[i]+p.Count[i]))
	}
	if p.Out == 0 {
		return 0, 0
	}
	for i := range p.Start {
		p.Start[i] -= int32(first)
	}
	return first, last
}

func kernelPlan(p *image.AxisPlan) kernels.AxisPlan {
	return kernels.AxisPlan{Out: p.Out, Taps: p.Taps, Start: p.Start, Count: p.Count, Coeffs: p.Coeffs}
}
