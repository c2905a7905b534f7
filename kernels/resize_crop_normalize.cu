// resize_crop_normalize: one launch turns a whole batch of decoded RGB8
// images of different sizes into the final batch tensor (antialiased
// resize of only the cropped pixels, center crop, scale, mean/std
// normalisation, NCHW or NHWC, float32/float16/bfloat16/uint8).
//
// The per-thread body lives in resize_crop_normalize.h so that the CPU
// emulation (kernels/emulate.go) runs the same code; see that header for the
// thread mapping and the arithmetic. Parameters are scalars because the Go
// launcher passes every parameter as one 8-byte slot.
#include "resize_crop_normalize.h"

extern "C" __global__ void __launch_bounds__(RCN_BLOCK_X * RCN_BLOCK_Y)
resize_crop_normalize(const unsigned char *src, const rcn_image *images, const int *plans,
		      void *dst, int count, int out_w, int out_h, int layout, int dtype,
		      float mean0, float mean1, float mean2, float std0, float std1, float std2)
{
	rcn_args a;
	a.src = src;
	a.images = images;
	a.plans = plans;
	a.dst = dst;
	a.count = count;
	a.out_w = out_w;
	a.out_h = out_h;
	a.layout = layout;
	a.dtype = dtype;
	a.mean[0] = mean0;
	a.mean[1] = mean1;
	a.mean[2] = mean2;
	a.std[0] = std0;
	a.std[1] = std1;
	a.std[2] = std2;
	rcn_thread(&a, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y);
}
