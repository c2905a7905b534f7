/*
 * resize_crop_normalize.h: the per-element body of the fused
 * resize_crop_normalize kernel.
 *
 * This header compiles two ways:
 *   - as CUDA (nvcc defines __CUDACC__): every function is __device__ and
 *     resize_crop_normalize.cu wraps rcn_thread in a __global__ kernel;
 *   - as plain C (gcc via cgo, kernels/emulate.go): every function is static
 *     inline and the emulator calls rcn_thread once for every
 *     (block, thread) index of the launch grid, so the CPU runs exactly the
 *     code the GPU runs, index arithmetic included.
 * Keep it free of anything only one of the two compilers understands.
 *
 * What one thread computes: one output pixel (all three channels) of one
 * image of the batch. The launch grid (see kernels.Geometry in Go) is
 *   blockDim = (RCN_BLOCK_X, RCN_BLOCK_Y, 1)
 *   gridDim  = (ceil(outW/RCN_BLOCK_X), ceil(outH/RCN_BLOCK_Y), images)
 * and thread (block b, thread t) writes pixel
 *   x = b.x*RCN_BLOCK_X + t.x, y = b.y*RCN_BLOCK_Y + t.y of image b.z;
 * threads past the right or bottom edge return without writing.
 *
 * Arithmetic (PIL's antialiased resampling, which torchvision uses, limited
 * to the pixels the crop keeps), all integer until the final normalisation:
 *   h[k]  = clamp8((2^21 + sum_j in[ys+k][xs+j] * cx[j]) >> 22)   k < county
 *   u     = clamp8((2^21 + sum_k h[k] * cy[k]) >> 22)
 *   v     = (float)u / 255; out = (v - mean[c]) / std[c]
 * then converted to the output dtype (float16 and bfloat16 round to nearest
 * even). For uint8 output u is stored as is. The horizontal pass is
 * recomputed per output pixel instead of being shared through shared
 * memory; the input rows it reads stay in L1/L2 and the kernel remains far
 * from being the bound (the host-to-device copy is).
 */
#ifndef STOKER_RESIZE_CROP_NORMALIZE_H
#define STOKER_RESIZE_CROP_NORMALIZE_H

#ifdef __CUDACC__
#define RCN_FN __device__ __forceinline__
#else
#define RCN_FN static inline
#endif

#define RCN_PRECISION_BITS 22
#define RCN_BLOCK_X 32
#define RCN_BLOCK_Y 8

/* Output layouts and element types; the Go constants have the same values. */
#define RCN_NCHW 0
#define RCN_NHWC 1
#define RCN_F32 0
#define RCN_F16 1
#define RCN_BF16 2
#define RCN_U8 3

/*
 * One image of the batch, 32 bytes, mirrored by kernels.imageDesc in Go.
 * A plan at plans[p] for an axis with `out` output samples is laid out as
 *   plans[p]                         taps (coefficients per sample)
 *   plans[p+1 .. p+out]              start: first input index of sample i
 *   plans[p+1+out .. p+2*out]        count: input samples used by sample i
 *   plans[p+1+2*out + i*taps + k]    coefficient k of sample i (Q22)
 */
typedef struct {
	long long src; /* byte offset of the image's first pixel in the packed input */
	int width;     /* pixels; rows are width*3 bytes, RGB, no padding */
	int height;
	int xplan; /* index into plans of the horizontal plan (out = outW) */
	int yplan; /* index into plans of the vertical plan (out = outH) */
	int reserved[2];
} rcn_image;

/* Everything one launch needs, gathered from the kernel's parameters. */
typedef struct {
	const unsigned char *src; /* packed RGB8 pixels of every image */
	const rcn_image *images;  /* count descriptors */
	const int *plans;         /* packed resampling plans */
	void *dst;                /* count * 3 * outH * outW elements */
	int count;
	int out_w;
	int out_h;
	int layout; /* RCN_NCHW or RCN_NHWC */
	int dtype;  /* RCN_F32, RCN_F16, RCN_BF16 or RCN_U8 */
	float mean[3];
	float std[3];
} rcn_args;

RCN_FN int rcn_clamp8(int v)
{
	return v < 0 ? 0 : (v > 255 ? 255 : v);
}

RCN_FN unsigned int rcn_float_bits(float f)
{
	union {
		float f;
		unsigned int u;
	} b;
	b.f = f;
	return b.u;
}

/* IEEE 754 binary16 from binary32, round to nearest even. */
RCN_FN unsigned short rcn_float16(float f)
{
	unsigned int b = rcn_float_bits(f);
	unsigned int sign = (b >> 16) & 0x8000u;
	int exp = (int)((b >> 23) & 0xffu);
	unsigned int mant = b & 0x7fffffu;
	if (exp == 0xff) { /* Inf or NaN */
		return (unsigned short)(sign | (mant ? 0x7e00u : 0x7c00u));
	}
	if (exp > 142) { /* too large: rounds to Inf */
		return (unsigned short)(sign | 0x7c00u);
	}
	if (exp >= 113) { /* normal half */
		unsigned int h = ((unsigned int)(exp - 112) << 10) | (mant >> 13);
		unsigned int rest = mant & 0x1fffu;
		if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) {
			h++; /* a carry into the exponent is still the right answer */
		}
		return (unsigned short)(sign | h);
	}
	if (exp >= 102) { /* subnormal half */
		unsigned int m = mant | 0x800000u;
		unsigned int shift = (unsigned int)(126 - exp);
		unsigned int h = m >> shift;
		unsigned int rest = m & ((1u << shift) - 1u);
		unsigned int half = 1u << (shift - 1u);
		if (rest > half || (rest == half && (h & 1u))) {
			h++;
		}
		return (unsigned short)(sign | h);
	}
	return (unsigned short)sign; /* underflows to a signed zero */
}

/* bfloat16 from binary32, round to nearest even; NaN stays a quiet NaN. */
RCN_FN unsigned short rcn_bfloat16(float f)
{
	unsigned int b = rcn_float_bits(f);
	if ((b & 0x7fffffffu) > 0x7f800000u) {
		return (unsigned short)((b >> 16) | 0x40u);
	}
	return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

/* Stores channel c (0..2) of pixel (x, y) of image n. */
RCN_FN void rcn_store(const rcn_args *a, int n, int x, int y, int c, int u)
{
	long long i;
	if (a->layout == RCN_NHWC) {
		i = (((long long)n * a->out_h + y) * a->out_w + x) * 3 + c;
	} else {
		i = (((long long)n * 3 + c) * a->out_h + y) * a->out_w + x;
	}
	if (a->dtype == RCN_U8) {
		((unsigned char *)a->dst)[i] = (unsigned char)u;
		return;
	}
	float v = (float)u / 255.0f;
	float o = (v - a->mean[c]) / a->std[c];
	if (a->dtype == RCN_F32) {
		((float *)a->dst)[i] = o;
	} else if (a->dtype == RCN_F16) {
		((unsigned short *)a->dst)[i] = rcn_float16(o);
	} else {
		((unsigned short *)a->dst)[i] = rcn_bfloat16(o);
	}
}

/* Computes and stores the three channels of output pixel (x, y) of image n. */
RCN_FN void rcn_pixel(const rcn_args *a, int n, int x, int y)
{
	const rcn_image im = a->images[n];
	const int *xp = a->plans + im.xplan;
	const int *yp = a->plans + im.yplan;
	const int xtaps = xp[0];
	const int ytaps = yp[0];
	const int xs = xp[1 + x];
	const int xn = xp[1 + a->out_w + x];
	const int *cx = xp + 1 + 2 * a->out_w + x * xtaps;
	const int ys = yp[1 + y];
	const int yn = yp[1 + a->out_h + y];
	const int *cy = yp + 1 + 2 * a->out_h + y * ytaps;
	const int bias = 1 << (RCN_PRECISION_BITS - 1);
	const long long stride = (long long)im.width * 3;
	const unsigned char *base = a->src + im.src + (long long)xs * 3;
	int v0 = bias, v1 = bias, v2 = bias;
	for (int k = 0; k < yn; k++) {
		const unsigned char *row = base + (long long)(ys + k) * stride;
		int h0 = bias, h1 = bias, h2 = bias;
		for (int j = 0; j < xn; j++) {
			const int w = cx[j];
			h0 += (int)row[3 * j] * w;
			h1 += (int)row[3 * j + 1] * w;
			h2 += (int)row[3 * j + 2] * w;
		}
		const int w = cy[k];
		v0 += rcn_clamp8(h0 >> RCN_PRECISION_BITS) * w;
		v1 += rcn_clamp8(h1 >> RCN_PRECISION_BITS) * w;
		v2 += rcn_clamp8(h2 >> RCN_PRECISION_BITS) * w;
	}
	rcn_store(a, n, x, y, 0, rcn_clamp8(v0 >> RCN_PRECISION_BITS));
	rcn_store(a, n, x, y, 1, rcn_clamp8(v1 >> RCN_PRECISION_BITS));
	rcn_store(a, n, x, y, 2, rcn_clamp8(v2 >> RCN_PRECISION_BITS));
}

/*
 * The body of one thread: (bx, by, bz) is blockIdx, (tx, ty) threadIdx.
 * The block size is fixed at RCN_BLOCK_X x RCN_BLOCK_Y.
 */
RCN_FN void rcn_thread(const rcn_args *a, unsigned int bx, unsigned int by, unsigned int bz,
		       unsigned int tx, unsigned int ty)
{
	const int x = (int)(bx * RCN_BLOCK_X + tx);
	const int y = (int)(by * RCN_BLOCK_Y + ty);
	const int n = (int)bz;
	if (x >= a->out_w || y >= a->out_h || n >= a->count) {
		return;
	}
	rcn_pixel(a, n, x, y);
}

#endif /* STOKER_RESIZE_CROP_NORMALIZE_H */
