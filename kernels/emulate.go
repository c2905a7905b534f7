//go:build cgo

package kernels

/*
#cgo CFLAGS: -O2 -std=c11 -fno-fast-math -I${SRCDIR}
#include "resize_crop_normalize.h"

// rcn_emulate walks the launch grid one thread at a time. buf holds the
// packed job (pixels, descriptors at images_off, plans at plans_off).
static void rcn_emulate(const unsigned char *buf, long long images_off, long long plans_off,
			void *dst, int count, int out_w, int out_h, int layout, int dtype,
			const float *mean, const float *std,
			unsigned int grid_x, unsigned int grid_y, unsigned int grid_z,
			unsigned int block_x, unsigned int block_y)
{
	rcn_args a;
	a.src = buf;
	a.images = (const rcn_image *)(buf + images_off);
	a.plans = (const int *)(buf + plans_off);
	a.dst = dst;
	a.count = count;
	a.out_w = out_w;
	a.out_h = out_h;
	a.layout = layout;
	a.dtype = dtype;
	for (int c = 0; c < 3; c++) {
		a.mean[c] = mean[c];
		a.std[c] = std[c];
	}
	for (unsigned int bz = 0; bz < grid_z; bz++)
		for (unsigned int by = 0; by < grid_y; by++)
			for (unsigned int bx = 0; bx < grid_x; bx++)
				for (unsigned int ty = 0; ty < block_y; ty++)
					for (unsigned int tx = 0; tx < block_x; tx++)
						rcn_thread(&a, bx, by, bz, tx, ty);
}

static int rcn_image_size(void) { return (int)sizeof(rcn_image); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// EmulateResizeCropNormalize runs the resize_crop_normalize kernel body
// (resize_crop_normalize.h, compiled by the host C compiler in ISO C11
// mode, so without floating-point contraction, like nvcc -fmad=false) on
// the CPU over the job's whole launch grid and writes j.Dst as the device
// would. It calls the thread body once for every index of the grid the
// device uses (Geometry):
//
//	for bz in 0..grid.z, by in 0..grid.y, bx in 0..grid.x,
//	    ty in 0..block.y, tx in 0..block.x:
//	        rcn_thread(args, blockIdx=(bx,by,bz), threadIdx=(tx,ty))
//
// Each thread writes only its own output elements and reads nothing
// another thread writes, so running them one after another gives exactly
// what the concurrent GPU threads give. The input is packed with Job.Pack,
// as the device packs it. It needs cgo, not CUDA; it is for tests (one
// core, no SIMD), not for preprocessing.
func EmulateResizeCropNormalize(j *Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	if len(j.Images) == 0 {
		return nil
	}
	if n := int(C.rcn_image_size()); n != 32 {
		return fmt.Errorf("kernels: emulate: sizeof(rcn_image) is %d, kernels packs 32", n)
	}
	// Back the buffer with int64s so that the int and long long fields the
	// C code reads are aligned.
	size := j.Packing().Size
	words := make([]int64, (size+7)/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	p := j.Pack(buf, 1)
	grid, block := Geometry(j)
	mean, std := j.Mean, j.Std
	C.rcn_emulate((*C.uchar)(unsafe.Pointer(&buf[0])), C.longlong(p.ImagesOffset), C.longlong(p.PlansOffset),
		unsafe.Pointer(&j.Dst[0]), C.int(len(j.Images)), C.int(j.OutW), C.int(j.OutH),
		C.int(j.Layout), C.int(j.DType),
		(*C.float)(unsafe.Pointer(&mean[0])), (*C.float)(unsafe.Pointer(&std[0])),
		C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]), C.uint(block[0]), C.uint(block[1]))
	return nil
}
