/*
 * fakecuda: a CPU stand-in for the CUDA driver library (libcuda.so.1), so
 * that stoker's `-tags cuda` code — the owner goroutine, slots, streams,
 * events, pinned buffers, error handling, CPU fallback — runs and is
 * tested on a machine without a GPU. See README.md beside this file.
 *
 * It implements the driver calls stoker makes, strictly:
 *   - every call that needs a context fails with CUDA_ERROR_INVALID_CONTEXT
 *     when none is current on the calling OS thread, and a stream, event,
 *     module or allocation of another context is an invalid handle, so a
 *     driver call from a goroutine other than the owner fails;
 *   - device memory is host memory in a registry; a copy or a kernel
 *     pointer outside a live allocation is an error, asynchronous copies
 *     must use pinned host memory (cuMemAllocHost), and device memory is
 *     capped (STOKER_FAKECUDA_MEMORY, default 8 GiB) so that running out
 *     of it is CUDA_ERROR_OUT_OF_MEMORY as on a GPU;
 *   - device memory a synchronous cuMemcpyHtoD from pageable memory wrote
 *     is off limits to stream work until cuCtxSynchronize: on a GPU that
 *     copy may return before its DMA ends;
 *   - each stream is a thread that runs its copies, launches and event
 *     records in order, after the call that queued them has returned, so
 *     reading a result before waiting for it reads stale memory;
 *   - cuModuleLoadData reads the PTX's entries, parameter types and
 *     .maxntid; a kernel runs only if its parameters match what this file
 *     was written for, and a launch with more threads per block than the
 *     PTX allows fails as on a GPU. Kernels run the same C bodies as the
 *     emulation (resize_crop_normalize.h, wordpiece.h), thread by thread;
 *   - errors can be injected (STOKER_FAKECUDA_FAIL, or stoker_fakecuda_fail
 *     from a test): the nth call of a function fails with a given code,
 *     at once or asynchronously; the errors that end a context on a GPU
 *     (illegal address, launch failed, launch timeout, assert, unknown,
 *     ...) end it here too.
 * Every other driver function exists (unsupported.c, generated) and fails
 * with CUDA_ERROR_NOT_SUPPORTED, naming itself on stderr.
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "resize_crop_normalize.h"
#include "wordpiece.h"

#define FC_API __attribute__((visibility("default")))
#define FC_MAX_PARAMS 32
#define FC_MAX_ENTRIES 16

/* ---- state ---------------------------------------------------------- */

struct fc_ctx {
	CUdevice device;
	CUresult sticky;             /* set once an error has ended the context */
	long long events, modules; /* live ones created in the context */
};

enum { FC_DEVICE_MEMORY, FC_PINNED_MEMORY };

struct fc_alloc {
	uintptr_t base;
	size_t size;
	int kind;
	struct fc_ctx *ctx;
	/* Device memory that a cuMemcpyHtoD from pageable host memory wrote and
	 * no context-wide synchronisation has ordered since: on a GPU its DMA
	 * may still be in flight, and work on a non-blocking stream is not
	 * ordered after it. */
	int unsynced;
};

struct fc_kernel; /* an emulated kernel: name, signature, body */

struct fc_func {
	char name[96];
	int nparams;
	int psize[FC_MAX_PARAMS]; /* bytes of each parameter, from the PTX */
	char ptype[FC_MAX_PARAMS]; /* 'u' unsigned/signed/bits, 'f' float */
	unsigned maxntid;          /* threads per block allowed, 0 = no bound */
	const struct fc_kernel *impl;
	struct fc_module *module;
};

struct fc_module {
	struct fc_ctx *ctx;
	int nfuncs;
	struct fc_func funcs[FC_MAX_ENTRIES];
};

enum { FC_OP_COPY, FC_OP_LAUNCH, FC_OP_EVENT };

struct fc_event {
	struct fc_ctx *ctx;
	uint64_t generation; /* bumped by every record */
	int recorded;
	int done;          /* the latest record has run */
	int pending;       /* queued records not yet run */
	struct timespec at; /* when the latest record ran */
};

struct fc_op {
	struct fc_op *next;
	int kind;
	CUresult fault; /* injected asynchronous error: ends the context when the op runs */
	/* FC_OP_COPY */
	void *dst;
	const void *src;
	size_t n;
	/* FC_OP_LAUNCH */
	const struct fc_func *fn;
	uint64_t args[FC_MAX_PARAMS];
	unsigned grid[3], block[3];
	/* FC_OP_EVENT */
	struct fc_event *event;
	uint64_t generation;
};

struct fc_stream {
	struct fc_ctx *ctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fc_op *head, *tail;
	uint64_t submitted, completed;
	int running; /* an op is executing */
	int stop;
	pthread_t thread;
};

/* One lock guards the registries, the counters and every event. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_event_cv = PTHREAD_COND_INITIALIZER;
static __thread struct fc_ctx *g_current;

static int g_initialised;
static size_t g_memory_cap = (size_t)8 << 30;
static size_t g_device_bytes, g_device_peak, g_pinned_bytes;
static long g_delay_us;
static int g_paused; /* streams start no new work while set */
static pthread_cond_t g_pause_cv = PTHREAD_COND_INITIALIZER;

/* Every live stream, for cuMemFree's, cuCtxSynchronize's and cuCtxDestroy's waits. */
static struct fc_stream **g_streams;
static size_t g_nstreams, g_streams_cap;

static struct fc_alloc *g_allocs;
static size_t g_nallocs, g_allocs_cap;

static long long g_live_contexts, g_live_modules, g_live_streams, g_live_events;
static long long g_busy_streams, g_max_busy_streams;
static long long g_left_at_destroy; /* allocations, streams, events, modules a healthy context's owner left to cuCtxDestroy */

#define FC_MAX_COUNTED 64
static struct {
	const char *name;
	long long calls;
} g_counts[FC_MAX_COUNTED];

struct fc_fault {
	struct fc_fault *next;
	char call[64];
	long countdown; /* fails when it reaches 0 */
	CUresult code;
	int async;
};
static struct fc_fault *g_faults;

/* ---- helpers --------------------------------------------------------- */

static void fc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fc_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fakecuda: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int fc_is_fatal(CUresult r)
{
	switch (r) {
	case CUDA_ERROR_ILLEGAL_ADDRESS:
	case CUDA_ERROR_LAUNCH_FAILED:
	case CUDA_ERROR_HARDWARE_STACK_ERROR:
	case CUDA_ERROR_ILLEGAL_INSTRUCTION:
	case CUDA_ERROR_MISALIGNED_ADDRESS:
	case CUDA_ERROR_INVALID_ADDRESS_SPACE:
	case CUDA_ERROR_INVALID_PC:
	case CUDA_ERROR_ECC_UNCORRECTABLE:
	case CUDA_ERROR_LAUNCH_TIMEOUT:
	case CUDA_ERROR_ASSERT:
	case CUDA_ERROR_UNKNOWN: /* what a GPU that fell off the bus returns */
		return 1;
	default:
		return 0;
	}
}

/* fc_enter counts a call of `name` and returns an injected error for it,
 * if one is due (*async tells whether it is to surface later). Holds g_mu. */
static CUresult fc_enter_locked(const char *name, int *async)
{
	*async = 0;
	for (int i = 0; i < FC_MAX_COUNTED; i++) {
		if (g_counts[i].name == NULL) {
			g_counts[i].name = name;
			g_counts[i].calls = 1;
			break;
		}
		if (strcmp(g_counts[i].name, name) == 0) {
			g_counts[i].calls++;
			break;
		}
	}
	for (struct fc_fault **p = &g_faults; *p; p = &(*p)->next) {
		struct fc_fault *f = *p;
		if (strcmp(f->call, name) != 0 || --f->countdown > 0)
			continue;
		CUresult code = f->code;
		*async = f->async;
		*p = f->next;
		free(f);
		fc_log("%s: injected %serror %d", name, *async ? "asynchronous " : "", (int)code);
		return code;
	}
	return CUDA_SUCCESS;
}

/* fc_ctx_check: the current context, usable, or the error to return. */
static CUresult fc_ctx_check_locked(const char *name, struct fc_ctx **out)
{
	struct fc_ctx *c = g_current;
	if (c == NULL) {
		fc_log("%s called on a thread with no current context (a driver call off the owner thread?)", name);
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	if (c->sticky != CUDA_SUCCESS)
		return c->sticky;
	*out = c;
	return CUDA_SUCCESS;
}

/* fc_begin is the common prologue of calls that need a context: count,
 * injected error (synchronous ones end the context if fatal), context. */
static CUresult fc_begin_locked(const char *name, struct fc_ctx **ctx, CUresult *async_fault)
{
	int async;
	if (!g_initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	CUresult inj = fc_enter_locked(name, &async);
	CUresult r = fc_ctx_check_locked(name, ctx);
	if (r != CUDA_SUCCESS)
		return r;
	if (async_fault)
		*async_fault = CUDA_SUCCESS;
	if (inj != CUDA_SUCCESS) {
		if (async && async_fault) {
			*async_fault = inj;
			return CUDA_SUCCESS;
		}
		if (fc_is_fatal(inj))
			(*ctx)->sticky = inj;
		return inj;
	}
	return CUDA_SUCCESS;
}

static struct fc_alloc *fc_find_locked(uintptr_t p, size_t n, int kind)
{
	for (size_t i = 0; i < g_nallocs; i++) {
		struct fc_alloc *a = &g_allocs[i];
		if (a->kind == kind && p >= a->base && p - a->base <= a->size && n <= a->size - (p - a->base))
			return a;
	}
	return NULL;
}

static CUresult fc_register_locked(void *p, size_t size, int kind, struct fc_ctx *ctx)
{
	if (g_nallocs == g_allocs_cap) {
		size_t cap = g_allocs_cap ? 2 * g_allocs_cap : 64;
		struct fc_alloc *a = realloc(g_allocs, cap * sizeof *a);
		if (a == NULL)
			return CUDA_ERROR_OUT_OF_MEMORY;
		g_allocs = a;
		g_allocs_cap = cap;
	}
	g_allocs[g_nallocs++] = (struct fc_alloc){(uintptr_t)p, size, kind, ctx, 0};
	return CUDA_SUCCESS;
}

static CUresult fc_unregister_locked(uintptr_t p, int kind, size_t *size)
{
	for (size_t i = 0; i < g_nallocs; i++) {
		if (g_allocs[i].base == p && g_allocs[i].kind == kind) {
			*size = g_allocs[i].size;
			g_allocs[i] = g_allocs[--g_nallocs];
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* fc_synced_locked: the context's pageable uploads are complete and ordered
 * before whatever is queued next (cuCtxSynchronize). */
static void fc_synced_locked(struct fc_ctx *c)
{
	for (size_t i = 0; i < g_nallocs; i++)
		if (g_allocs[i].ctx == c)
			g_allocs[i].unsynced = 0;
}

/* fc_check_synced: device memory that work queued on a stream reads or
 * writes is not the target of a pageable upload still unordered. */
static CUresult fc_check_synced_locked(const char *name, const char *what, uintptr_t p)
{
	struct fc_alloc *a = fc_find_locked(p, 1, FC_DEVICE_MEMORY);
	if (a == NULL || !a->unsynced)
		return CUDA_SUCCESS;
	fc_log("%s: %s (%#lx) is in device memory that cuMemcpyHtoD wrote from pageable host memory "
	       "with no cuCtxSynchronize since: on a GPU that DMA may still be running, and a non-blocking "
	       "stream is not ordered after it",
	       name, what, (unsigned long)p);
	return CUDA_ERROR_INVALID_VALUE;
}

/* ---- initialisation and devices -------------------------------------- */

static void fc_parse_faults(const char *spec);

FC_API CUresult cuInit(unsigned int flags)
{
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&g_mu);
	if (!g_initialised) {
		const char *s = getenv("STOKER_FAKECUDA_MEMORY");
		if (s && *s)
			g_memory_cap = (size_t)strtoull(s, NULL, 10);
		s = getenv("STOKER_FAKECUDA_DELAY_US");
		if (s && *s)
			g_delay_us = strtol(s, NULL, 10);
		s = getenv("STOKER_FAKECUDA_FAIL");
		if (s && *s)
			fc_parse_faults(s);
		g_initialised = 1;
	}
	pthread_mutex_unlock(&g_mu);
	return CUDA_SUCCESS;
}

FC_API CUresult cuDriverGetVersion(int *v)
{
	if (v == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*v = CUDA_VERSION;
	return CUDA_SUCCESS;
}

FC_API CUresult cuDeviceGetCount(int *n)
{
	if (!g_initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (n == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*n = 1;
	return CUDA_SUCCESS;
}

FC_API CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	if (!g_initialised)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (d == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (ordinal != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*d = 0;
	return CUDA_SUCCESS;
}

FC_API CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (name == NULL || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "fakecuda (CPU stand-in for the CUDA driver)");
	return CUDA_SUCCESS;
}

FC_API CUresult cuDeviceTotalMem(size_t *bytes, CUdevice d)
{
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*bytes = g_memory_cap;
	return CUDA_SUCCESS;
}

FC_API CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute attr, CUdevice d)
{
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	switch (attr) {
	case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X:
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y:
		*v = 1024;
		break;
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z:
		*v = 64;
		break;
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X:
		*v = 2147483647;
		break;
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y:
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z:
		*v = 65535;
		break;
	case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
		*v = 32;
		break;
	case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
		*v = 1;
		break;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
		*v = 7;
		break;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
		*v = 5;
		break;
	case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
		*v = 1;
		break;
	default:
		*v = 0;
	}
	return CUDA_SUCCESS;
}

static const struct {
	CUresult code;
	const char *name;
} fc_error_names[] = {
	{CUDA_SUCCESS, "CUDA_SUCCESS"},
	{CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"},
	{CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"},
	{CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED"},
	{CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED"},
	{CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
	{CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE"},
	{CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX"},
	{CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT"},
	{CUDA_ERROR_CONTEXT_IS_DESTROYED, "CUDA_ERROR_CONTEXT_IS_DESTROYED"},
	{CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE"},
	{CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
	{CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY"},
	{CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS"},
	{CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
	{CUDA_ERROR_LAUNCH_TIMEOUT, "CUDA_ERROR_LAUNCH_TIMEOUT"},
	{CUDA_ERROR_ASSERT, "CUDA_ERROR_ASSERT"},
	{CUDA_ERROR_HARDWARE_STACK_ERROR, "CUDA_ERROR_HARDWARE_STACK_ERROR"},
	{CUDA_ERROR_ILLEGAL_INSTRUCTION, "CUDA_ERROR_ILLEGAL_INSTRUCTION"},
	{CUDA_ERROR_MISALIGNED_ADDRESS, "CUDA_ERROR_MISALIGNED_ADDRESS"},
	{CUDA_ERROR_INVALID_ADDRESS_SPACE, "CUDA_ERROR_INVALID_ADDRESS_SPACE"},
	{CUDA_ERROR_INVALID_PC, "CUDA_ERROR_INVALID_PC"},
	{CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED"},
	{CUDA_ERROR_ECC_UNCORRECTABLE, "CUDA_ERROR_ECC_UNCORRECTABLE"},
	{CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED"},
	{CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN"},
};

FC_API CUresult cuGetErrorName(CUresult r, const char **s)
{
	if (s == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < sizeof fc_error_names / sizeof fc_error_names[0]; i++) {
		if (fc_error_names[i].code == r) {
			*s = fc_error_names[i].name;
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_INVALID_VALUE;
}

FC_API CUresult cuGetErrorString(CUresult r, const char **s)
{
	return cuGetErrorName(r, s);
}

/* ---- contexts -------------------------------------------------------- */

FC_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice d)
{
	(void)flags;
	int async;
	pthread_mutex_lock(&g_mu);
	CUresult r = g_initialised ? fc_enter_locked("cuCtxCreate_v2", &async) : CUDA_ERROR_NOT_INITIALIZED;
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	if (d != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	struct fc_ctx *c = calloc(1, sizeof *c);
	if (c == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	c->device = d;
	pthread_mutex_lock(&g_mu);
	g_live_contexts++;
	pthread_mutex_unlock(&g_mu);
	g_current = c;
	*pctx = (CUcontext)c;
	return CUDA_SUCCESS;
}

static void fc_sync_context(struct fc_ctx *c);

static CUresult fc_destroy_stream(struct fc_stream *s);

/* cuCtxDestroy releases whatever the context still holds, as the driver
 * does; what a healthy context still held is counted (left_at_destroy):
 * stoker's owner goroutines release everything themselves. */
FC_API CUresult cuCtxDestroy(CUcontext ctx)
{
	struct fc_ctx *c = (struct fc_ctx *)ctx;
	if (c == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (;;) {
		struct fc_stream *s = NULL;
		pthread_mutex_lock(&g_mu);
		for (size_t i = 0; i < g_nstreams && s == NULL; i++)
			if (g_streams[i]->ctx == c)
				s = g_streams[i];
		pthread_mutex_unlock(&g_mu);
		if (s == NULL)
			break;
		fc_destroy_stream(s);
		pthread_mutex_lock(&g_mu);
		g_left_at_destroy += c->sticky == CUDA_SUCCESS;
		pthread_mutex_unlock(&g_mu);
	}
	pthread_mutex_lock(&g_mu);
	long long left = c->events + c->modules;
	for (size_t i = 0; i < g_nallocs;) {
		struct fc_alloc a = g_allocs[i];
		if (a.ctx != c) {
			i++;
			continue;
		}
		left++;
		if (a.kind == FC_DEVICE_MEMORY)
			g_device_bytes -= a.size;
		else
			g_pinned_bytes -= a.size;
		free((void *)a.base);
		g_allocs[i] = g_allocs[--g_nallocs];
	}
	g_live_events -= c->events;
	g_live_modules -= c->modules;
	g_live_contexts--;
	if (c->sticky == CUDA_SUCCESS && left > 0) {
		g_left_at_destroy += left;
		fc_log("cuCtxDestroy: the context still held %lld allocations, events or modules", left);
	}
	pthread_mutex_unlock(&g_mu);
	if (g_current == c)
		g_current = NULL;
	free(c);
	return CUDA_SUCCESS;
}

FC_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
	g_current = (struct fc_ctx *)ctx;
	return CUDA_SUCCESS;
}

FC_API CUresult cuCtxGetCurrent(CUcontext *ctx)
{
	*ctx = (CUcontext)g_current;
	return CUDA_SUCCESS;
}

FC_API CUresult cuCtxPushCurrent(CUcontext ctx)
{
	if (g_current != NULL && g_current != (struct fc_ctx *)ctx) {
		fc_log("cuCtxPushCurrent: a context stack deeper than one is not emulated");
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	g_current = (struct fc_ctx *)ctx;
	return CUDA_SUCCESS;
}

FC_API CUresult cuCtxPopCurrent(CUcontext *ctx)
{
	if (ctx)
		*ctx = (CUcontext)g_current;
	g_current = NULL;
	return CUDA_SUCCESS;
}

FC_API CUresult cuCtxGetDevice(CUdevice *d)
{
	if (g_current == NULL)
		return CUDA_ERROR_INVALID_CONTEXT;
	*d = g_current->device;
	return CUDA_SUCCESS;
}

/* ---- memory ---------------------------------------------------------- */

/* fc_allocate gives size bytes of device or pinned memory; fc_release
 * takes them back after waiting for the context's queued work, as the
 * driver does. */
static CUresult fc_allocate(const char *name, int kind, size_t size, void **out)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked(name, &c, NULL);
	if (r == CUDA_SUCCESS && size == 0)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS && kind == FC_DEVICE_MEMORY && (g_device_bytes > g_memory_cap || size > g_memory_cap - g_device_bytes))
		r = CUDA_ERROR_OUT_OF_MEMORY;
	void *m = NULL;
	if (r == CUDA_SUCCESS && posix_memalign(&m, kind == FC_DEVICE_MEMORY ? 256 : 4096, size) != 0)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS && (r = fc_register_locked(m, size, kind, c)) == CUDA_SUCCESS) {
		if (kind == FC_PINNED_MEMORY)
			g_pinned_bytes += size;
		else if ((g_device_bytes += size) > g_device_peak)
			g_device_peak = g_device_bytes;
		*out = m;
	} else {
		free(m);
	}
	pthread_mutex_unlock(&g_mu);
	return r;
}

static CUresult fc_release(const char *name, int kind, void *p)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked(name, &c, NULL);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	fc_sync_context(c);
	size_t size = 0;
	pthread_mutex_lock(&g_mu);
	r = fc_unregister_locked((uintptr_t)p, kind, &size);
	if (r == CUDA_SUCCESS)
		*(kind == FC_PINNED_MEMORY ? &g_pinned_bytes : &g_device_bytes) -= size;
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		fc_log("%s: %p is not the start of live %s memory", name, p, kind == FC_PINNED_MEMORY ? "pinned" : "device");
	else
		free(p);
	return r;
}

FC_API CUresult cuMemAlloc(CUdeviceptr *p, size_t size)
{
	void *m = NULL;
	CUresult r = fc_allocate("cuMemAlloc_v2", FC_DEVICE_MEMORY, size, &m);
	if (r == CUDA_SUCCESS)
		*p = (CUdeviceptr)(uintptr_t)m;
	return r;
}

FC_API CUresult cuMemFree(CUdeviceptr p)
{
	return fc_release("cuMemFree_v2", FC_DEVICE_MEMORY, (void *)(uintptr_t)p);
}

FC_API CUresult cuMemAllocHost(void **p, size_t size)
{
	return fc_allocate("cuMemAllocHost_v2", FC_PINNED_MEMORY, size, p);
}

FC_API CUresult cuMemFreeHost(void *p)
{
	return fc_release("cuMemFreeHost", FC_PINNED_MEMORY, p);
}

FC_API CUresult cuMemGetInfo(size_t *free_bytes, size_t *total)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuMemGetInfo_v2", &c, NULL);
	if (r == CUDA_SUCCESS) {
		*free_bytes = g_device_bytes < g_memory_cap ? g_memory_cap - g_device_bytes : 0;
		*total = g_memory_cap;
	}
	pthread_mutex_unlock(&g_mu);
	return r;
}

/* ---- streams --------------------------------------------------------- */

static void fc_run_launch(const struct fc_op *op);

static void fc_execute(struct fc_stream *s, struct fc_op *op)
{
	if (op->kind == FC_OP_EVENT) {
		pthread_mutex_lock(&g_mu);
		if (op->event->generation == op->generation) {
			op->event->done = 1;
			clock_gettime(CLOCK_MONOTONIC, &op->event->at);
		}
		op->event->pending--;
		pthread_cond_broadcast(&g_event_cv);
		pthread_mutex_unlock(&g_mu);
		return;
	}
	pthread_mutex_lock(&g_mu);
	CUresult sticky = s->ctx->sticky;
	if (sticky == CUDA_SUCCESS && op->fault != CUDA_SUCCESS) {
		s->ctx->sticky = fc_is_fatal(op->fault) ? op->fault : CUDA_ERROR_LAUNCH_FAILED;
		sticky = s->ctx->sticky;
	}
	pthread_mutex_unlock(&g_mu);
	if (sticky != CUDA_SUCCESS)
		return; /* a dead context runs nothing more */
	if (op->kind == FC_OP_COPY)
		memmove(op->dst, op->src, op->n);
	else
		fc_run_launch(op);
}

static void *fc_stream_main(void *arg)
{
	struct fc_stream *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->head == NULL && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->head == NULL)
			break;
		struct fc_op *op = s->head;
		s->head = op->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->running = 1;
		pthread_mutex_unlock(&s->mu);

		pthread_mutex_lock(&g_mu);
		while (g_paused)
			pthread_cond_wait(&g_pause_cv, &g_mu);
		if (++g_busy_streams > g_max_busy_streams)
			g_max_busy_streams = g_busy_streams;
		long delay = op->kind == FC_OP_EVENT ? 0 : g_delay_us;
		pthread_mutex_unlock(&g_mu);
		if (delay > 0)
			usleep((useconds_t)delay);
		fc_execute(s, op);
		pthread_mutex_lock(&g_mu);
		g_busy_streams--;
		pthread_mutex_unlock(&g_mu);
		free(op);

		pthread_mutex_lock(&s->mu);
		s->running = 0;
		s->completed++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}


static void fc_wait_stream(struct fc_stream *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->completed < s->submitted)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static void fc_sync_context(struct fc_ctx *c)
{
	pthread_mutex_lock(&g_mu);
	size_t n = g_nstreams;
	struct fc_stream **list = malloc((n ? n : 1) * sizeof *list);
	size_t k = 0;
	for (size_t i = 0; list && i < n; i++)
		if (g_streams[i]->ctx == c)
			list[k++] = g_streams[i];
	pthread_mutex_unlock(&g_mu);
	/* Streams are destroyed only by their context's owner, which is the
	 * caller here, so none goes away while it is waited for. */
	for (size_t i = 0; i < k; i++)
		fc_wait_stream(list[i]);
	free(list);
}

static int fc_stream_live_locked(struct fc_stream *s)
{
	for (size_t i = 0; i < g_nstreams; i++)
		if (g_streams[i] == s)
			return 1;
	return 0;
}

FC_API CUresult cuStreamCreate(CUstream *ps, unsigned int flags)
{
	(void)flags;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuStreamCreate", &c, NULL);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	struct fc_stream *s = calloc(1, sizeof *s);
	if (s == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->ctx = c;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thread, NULL, fc_stream_main, s) != 0) {
		free(s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_lock(&g_mu);
	if (g_nstreams == g_streams_cap) {
		g_streams_cap = g_streams_cap ? 2 * g_streams_cap : 16;
		g_streams = realloc(g_streams, g_streams_cap * sizeof *g_streams);
	}
	g_streams[g_nstreams++] = s;
	g_live_streams++;
	pthread_mutex_unlock(&g_mu);
	*ps = (CUstream)s;
	return CUDA_SUCCESS;
}

/* fc_stream_check: s is a live stream of the current context c. */
static CUresult fc_stream_check_locked(const char *name, struct fc_stream *s, struct fc_ctx *c)
{
	if (s == NULL) {
		fc_log("%s on the default stream: stoker queues work on its own streams", name);
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	if (!fc_stream_live_locked(s) || s->ctx != c) {
		fc_log("%s: %p is not a live stream of the current context", name, (void *)s);
		return CUDA_ERROR_INVALID_HANDLE;
	}
	return CUDA_SUCCESS;
}

/* fc_destroy_stream lets the stream's thread finish its queue, then frees it. */
static CUresult fc_destroy_stream(struct fc_stream *s)
{
	pthread_mutex_lock(&g_mu);
	int found = 0;
	for (size_t i = 0; i < g_nstreams; i++) {
		if (g_streams[i] == s) {
			g_streams[i] = g_streams[--g_nstreams];
			found = 1;
			break;
		}
	}
	if (found)
		g_live_streams--;
	pthread_mutex_unlock(&g_mu);
	if (!found)
		return CUDA_ERROR_INVALID_HANDLE;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return CUDA_SUCCESS;
}

FC_API CUresult cuStreamDestroy(CUstream hs)
{
	struct fc_stream *s = (struct fc_stream *)hs;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuStreamDestroy_v2", &c, NULL);
	if (r == CUDA_ERROR_INVALID_CONTEXT || r == CUDA_ERROR_NOT_INITIALIZED) {
		pthread_mutex_unlock(&g_mu);
		return r;
	}
	/* A dead context's streams can still be destroyed (teardown). */
	r = fc_stream_check_locked("cuStreamDestroy", s, g_current);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	return fc_destroy_stream(s);
}

FC_API CUresult cuStreamSynchronize(CUstream hs)
{
	struct fc_stream *s = (struct fc_stream *)hs;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuStreamSynchronize", &c, NULL);
	if (r == CUDA_SUCCESS)
		r = fc_stream_check_locked("cuStreamSynchronize", s, c);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	fc_wait_stream(s);
	pthread_mutex_lock(&g_mu);
	r = c->sticky;
	pthread_mutex_unlock(&g_mu);
	return r;
}

FC_API CUresult cuStreamQuery(CUstream hs)
{
	struct fc_stream *s = (struct fc_stream *)hs;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuStreamQuery", &c, NULL);
	if (r == CUDA_SUCCESS)
		r = fc_stream_check_locked("cuStreamQuery", s, c);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&s->mu);
	int idle = s->completed == s->submitted;
	pthread_mutex_unlock(&s->mu);
	return idle ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

FC_API CUresult cuCtxSynchronize(void)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuCtxSynchronize", &c, NULL);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	fc_sync_context(c);
	pthread_mutex_lock(&g_mu);
	fc_synced_locked(c);
	r = c->sticky;
	pthread_mutex_unlock(&g_mu);
	return r;
}

static void fc_enqueue(struct fc_stream *s, struct fc_op *op)
{
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = op;
	else
		s->head = op;
	s->tail = op;
	s->submitted++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---- copies ---------------------------------------------------------- */

static CUresult fc_check_range_locked(const char *name, const char *what, uintptr_t p, size_t n, int kind)
{
	if (n == 0 || fc_find_locked(p, n, kind) != NULL)
		return CUDA_SUCCESS;
	if (kind == FC_PINNED_MEMORY)
		fc_log("%s: the %s, %zu bytes at %#lx, is not pinned host memory (cuMemAllocHost): "
		       "an asynchronous copy from pageable memory is staged and synchronous on a GPU",
		       name, what, n, (unsigned long)p);
	else
		fc_log("%s: the %s, %zu bytes at %#lx, is not inside one live device allocation", name, what, n,
		       (unsigned long)p);
	return CUDA_ERROR_INVALID_VALUE;
}

static CUresult fc_copy_async(const char *name, void *dst, int dst_kind, const void *src, int src_kind, size_t n,
			      CUstream hs)
{
	struct fc_ctx *c;
	CUresult fault;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked(name, &c, &fault);
	if (r == CUDA_SUCCESS)
		r = fc_stream_check_locked(name, (struct fc_stream *)hs, c);
	if (r == CUDA_SUCCESS)
		r = fc_check_range_locked(name, "destination", (uintptr_t)dst, n, dst_kind);
	if (r == CUDA_SUCCESS)
		r = fc_check_range_locked(name, "source", (uintptr_t)src, n, src_kind);
	if (r == CUDA_SUCCESS && n > 0 && dst_kind == FC_DEVICE_MEMORY)
		r = fc_check_synced_locked(name, "the destination", (uintptr_t)dst);
	if (r == CUDA_SUCCESS && n > 0 && src_kind == FC_DEVICE_MEMORY)
		r = fc_check_synced_locked(name, "the source", (uintptr_t)src);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	struct fc_op *op = calloc(1, sizeof *op);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op->kind = FC_OP_COPY;
	op->dst = dst;
	op->src = src;
	op->n = n;
	op->fault = fault;
	fc_enqueue((struct fc_stream *)hs, op);
	return CUDA_SUCCESS;
}

FC_API CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
	return fc_copy_async("cuMemcpyHtoDAsync_v2", (void *)(uintptr_t)dst, FC_DEVICE_MEMORY, src, FC_PINNED_MEMORY,
			     n, s);
}

FC_API CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
	return fc_copy_async("cuMemcpyDtoHAsync_v2", dst, FC_PINNED_MEMORY, (const void *)(uintptr_t)src,
			     FC_DEVICE_MEMORY, n, s);
}

FC_API CUresult cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
	return fc_copy_async("cuMemcpyDtoDAsync_v2", (void *)(uintptr_t)dst, FC_DEVICE_MEMORY,
			     (const void *)(uintptr_t)src, FC_DEVICE_MEMORY, n, s);
}

/* The synchronous copies wait for the context's queued work, like copies
 * on the legacy default stream, then copy from or to any host memory.
 * Host to device from pageable memory may return, on a GPU, once the data
 * is staged, before its DMA ends ("Synchronization" in the driver API's
 * notes): the destination is marked unsynced until cuCtxSynchronize (or a
 * device-to-host cuMemcpy, which returns only after the legacy stream's
 * earlier work), and queuing stream work on it until then is refused. */
static CUresult fc_copy_sync(const char *name, void *dst, int dst_device, const void *src, int src_device, size_t n)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked(name, &c, NULL);
	if (r == CUDA_SUCCESS && dst_device)
		r = fc_check_range_locked(name, "destination", (uintptr_t)dst, n, FC_DEVICE_MEMORY);
	if (r == CUDA_SUCCESS && src_device)
		r = fc_check_range_locked(name, "source", (uintptr_t)src, n, FC_DEVICE_MEMORY);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	fc_sync_context(c);
	memmove(dst, src, n);
	pthread_mutex_lock(&g_mu);
	if (!dst_device)
		fc_synced_locked(c);
	else if (n > 0 && !src_device && fc_find_locked((uintptr_t)src, n, FC_PINNED_MEMORY) == NULL) {
		struct fc_alloc *a = fc_find_locked((uintptr_t)dst, n, FC_DEVICE_MEMORY);
		if (a != NULL)
			a->unsynced = 1;
	}
	pthread_mutex_unlock(&g_mu);
	return CUDA_SUCCESS;
}

FC_API CUresult cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n)
{
	return fc_copy_sync("cuMemcpyHtoD_v2", (void *)(uintptr_t)dst, 1, src, 0, n);
}

FC_API CUresult cuMemcpyDtoH(void *dst, CUdeviceptr src, size_t n)
{
	return fc_copy_sync("cuMemcpyDtoH_v2", dst, 0, (const void *)(uintptr_t)src, 1, n);
}

/* ---- events ---------------------------------------------------------- */

FC_API CUresult cuEventCreate(CUevent *pe, unsigned int flags)
{
	(void)flags;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuEventCreate", &c, NULL);
	struct fc_event *e = NULL;
	if (r == CUDA_SUCCESS && (e = calloc(1, sizeof *e)) == NULL)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		e->ctx = c;
		c->events++;
		g_live_events++;
		*pe = (CUevent)e;
	}
	pthread_mutex_unlock(&g_mu);
	return r;
}

FC_API CUresult cuEventDestroy(CUevent he)
{
	struct fc_event *e = (struct fc_event *)he;
	if (e == NULL)
		return CUDA_ERROR_INVALID_HANDLE;
	pthread_mutex_lock(&g_mu);
	if (g_current == NULL || g_current != e->ctx) {
		pthread_mutex_unlock(&g_mu);
		fc_log("cuEventDestroy: the event's context is not current on this thread");
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	while (e->pending > 0)
		pthread_cond_wait(&g_event_cv, &g_mu);
	e->ctx->events--;
	g_live_events--;
	pthread_mutex_unlock(&g_mu);
	free(e);
	return CUDA_SUCCESS;
}

FC_API CUresult cuEventRecord(CUevent he, CUstream hs)
{
	struct fc_event *e = (struct fc_event *)he;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuEventRecord", &c, NULL);
	if (r == CUDA_SUCCESS)
		r = fc_stream_check_locked("cuEventRecord", (struct fc_stream *)hs, c);
	if (r == CUDA_SUCCESS && (e == NULL || e->ctx != c))
		r = CUDA_ERROR_INVALID_HANDLE;
	struct fc_op *op = NULL;
	if (r == CUDA_SUCCESS && (op = calloc(1, sizeof *op)) == NULL)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		e->generation++;
		e->recorded = 1;
		e->done = 0;
		e->pending++;
		op->kind = FC_OP_EVENT;
		op->event = e;
		op->generation = e->generation;
	}
	pthread_mutex_unlock(&g_mu);
	if (r == CUDA_SUCCESS)
		fc_enqueue((struct fc_stream *)hs, op);
	return r;
}

FC_API CUresult cuEventSynchronize(CUevent he)
{
	struct fc_event *e = (struct fc_event *)he;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuEventSynchronize", &c, NULL);
	if (r == CUDA_SUCCESS && (e == NULL || e->ctx != c))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS) {
		while (e->recorded && !e->done)
			pthread_cond_wait(&g_event_cv, &g_mu);
		r = c->sticky;
	}
	pthread_mutex_unlock(&g_mu);
	return r;
}

FC_API CUresult cuEventQuery(CUevent he)
{
	struct fc_event *e = (struct fc_event *)he;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuEventQuery", &c, NULL);
	if (r == CUDA_SUCCESS && (e == NULL || e->ctx != c))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS && e->recorded && !e->done)
		r = CUDA_ERROR_NOT_READY;
	pthread_mutex_unlock(&g_mu);
	return r;
}

FC_API CUresult cuEventElapsedTime(float *ms, CUevent ha, CUevent hb)
{
	struct fc_event *a = (struct fc_event *)ha, *b = (struct fc_event *)hb;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuEventElapsedTime", &c, NULL);
	if (r == CUDA_SUCCESS && (a == NULL || b == NULL || a->ctx != c || b->ctx != c || !a->recorded || !b->recorded))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS && (!a->done || !b->done))
		r = CUDA_ERROR_NOT_READY;
	if (r == CUDA_SUCCESS)
		*ms = (float)((double)(b->at.tv_sec - a->at.tv_sec) * 1e3 + (double)(b->at.tv_nsec - a->at.tv_nsec) / 1e6);
	pthread_mutex_unlock(&g_mu);
	return r;
}

/* ---- modules and kernels --------------------------------------------- */

typedef void (*fc_body)(const uint64_t *args, const unsigned grid[3], const unsigned block[3]);

/* An emulated kernel. sig has one letter per parameter, in order:
 * p pointer (8 bytes, must point into device memory), l 64-bit integer,
 * i 32-bit integer, f 32-bit float — what the .cu file declares. */
struct fc_kernel {
	const char *name;
	const char *sig;
	fc_body body;
};

static float fc_f32(uint64_t v)
{
	uint32_t u = (uint32_t)v;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static void fc_resize_crop_normalize(const uint64_t *v, const unsigned grid[3], const unsigned block[3])
{
	rcn_args a;
	a.src = (const unsigned char *)(uintptr_t)v[0];
	a.images = (const rcn_image *)(uintptr_t)v[1];
	a.plans = (const int *)(uintptr_t)v[2];
	a.dst = (void *)(uintptr_t)v[3];
	a.count = (int)v[4];
	a.out_w = (int)v[5];
	a.out_h = (int)v[6];
	a.layout = (int)v[7];
	a.dtype = (int)v[8];
	for (int c = 0; c < 3; c++) {
		a.mean[c] = fc_f32(v[9 + c]);
		a.std[c] = fc_f32(v[12 + c]);
	}
	for (unsigned bz = 0; bz < grid[2]; bz++)
		for (unsigned by = 0; by < grid[1]; by++)
			for (unsigned bx = 0; bx < grid[0]; bx++)
				for (unsigned ty = 0; ty < block[1]; ty++)
					for (unsigned tx = 0; tx < block[0]; tx++)
						rcn_thread(&a, bx, by, bz, tx, ty);
}

static void fc_wp_tokenize(const uint64_t *v, const unsigned grid[3], const unsigned block[3])
{
	for (unsigned bx = 0; bx < grid[0]; bx++)
		for (unsigned tx = 0; tx < block[0]; tx++)
			wp_tokenize_thread((const unsigned char *)(uintptr_t)v[0], (const unsigned char *)(uintptr_t)v[1],
					   (long long)v[2], (int)v[3], (int)v[4], (int *)(uintptr_t)v[5],
					   (int *)(uintptr_t)v[6], bx, tx);
}

static void fc_wp_assemble(const uint64_t *v, const unsigned grid[3], const unsigned block[3])
{
	for (unsigned bx = 0; bx < grid[0]; bx++)
		for (unsigned tx = 0; tx < block[0]; tx++)
			wp_assemble_thread((const unsigned char *)(uintptr_t)v[0], (const unsigned char *)(uintptr_t)v[1],
					   (long long)v[2], (long long)v[3], (int)v[4], (int)v[5], (int)v[6],
					   (const int *)(uintptr_t)v[7], (const int *)(uintptr_t)v[8], (int)v[9],
					   (int *)(uintptr_t)v[10], (int *)(uintptr_t)v[11], bx, tx);
}

static const struct fc_kernel fc_kernels[] = {
	{"resize_crop_normalize", "ppppiiiiiffffff", fc_resize_crop_normalize},
	{"wp_tokenize", "pplii" "pp", fc_wp_tokenize},
	{"wp_assemble", "ppll" "iii" "pp" "i" "pp", fc_wp_assemble},
};

/* fc_parse_ptx fills m from the PTX's .entry declarations. */
static CUresult fc_parse_ptx(const char *ptx, struct fc_module *m)
{
	const char *p = ptx;
	while ((p = strstr(p, ".entry ")) != NULL) {
		if (m->nfuncs == FC_MAX_ENTRIES)
			return CUDA_ERROR_INVALID_PTX;
		struct fc_func *f = &m->funcs[m->nfuncs++];
		p += strlen(".entry ");
		size_t n = strcspn(p, "( \t\n");
		if (n == 0 || n >= sizeof f->name)
			return CUDA_ERROR_INVALID_PTX;
		memcpy(f->name, p, n);
		f->name[n] = 0;
		f->module = m;
		const char *open = strchr(p, '('), *close = open ? strchr(open, ')') : NULL;
		if (open == NULL || close == NULL)
			return CUDA_ERROR_INVALID_PTX;
		for (const char *q = open; (q = strstr(q, ".param ")) != NULL && q < close; q++) {
			if (f->nparams == FC_MAX_PARAMS)
				return CUDA_ERROR_INVALID_PTX;
			q += strlen(".param ");
			int size = 0;
			char type = 'u';
			if (sscanf(q, ".%*1[usbf]%d", &size) != 1)
				return CUDA_ERROR_INVALID_PTX;
			if (q[1] == 'f')
				type = 'f';
			f->psize[f->nparams] = size / 8;
			f->ptype[f->nparams] = type;
			f->nparams++;
		}
		const char *body = strchr(close, '{');
		const char *bound = strstr(close, ".maxntid");
		unsigned x = 0, y = 1, z = 1;
		if (bound && body && bound < body && sscanf(bound, ".maxntid %u, %u, %u", &x, &y, &z) >= 1)
			f->maxntid = x * y * z;
		for (size_t k = 0; k < sizeof fc_kernels / sizeof fc_kernels[0]; k++)
			if (strcmp(fc_kernels[k].name, f->name) == 0)
				f->impl = &fc_kernels[k];
		p = close;
	}
	return CUDA_SUCCESS;
}

/* fc_signature_matches: the PTX parameters are what the emulated body reads. */
static int fc_signature_matches(const struct fc_func *f)
{
	const char *sig = f->impl->sig;
	if ((int)strlen(sig) != f->nparams)
		return 0;
	for (int i = 0; i < f->nparams; i++) {
		int want = (sig[i] == 'i' || sig[i] == 'f') ? 4 : 8;
		if (f->psize[i] != want || (sig[i] == 'f') != (f->ptype[i] == 'f'))
			return 0;
	}
	return 1;
}

FC_API CUresult cuModuleLoadData(CUmodule *pm, const void *image)
{
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuModuleLoadData", &c, NULL);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	struct fc_module *m = calloc(1, sizeof *m);
	if (m == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->ctx = c;
	if ((r = fc_parse_ptx(image, m)) != CUDA_SUCCESS || m->nfuncs == 0) {
		fc_log("cuModuleLoadData: the image is not PTX with .entry declarations this stand-in can read");
		free(m);
		return CUDA_ERROR_INVALID_PTX;
	}
	for (int i = 0; i < m->nfuncs; i++) {
		const struct fc_func *f = &m->funcs[i];
		if (f->impl != NULL && !fc_signature_matches(f)) {
			fc_log("cuModuleLoadData: the PTX declares %s with %d parameters that differ from the "
			       "emulated body's (%s): update kernels/fakecuda/fakecuda.c with the .cu file",
			       f->name, f->nparams, f->impl->sig);
			free(m);
			return CUDA_ERROR_INVALID_PTX;
		}
	}
	pthread_mutex_lock(&g_mu);
	c->modules++;
	g_live_modules++;
	pthread_mutex_unlock(&g_mu);
	*pm = (CUmodule)m;
	return CUDA_SUCCESS;
}

FC_API CUresult cuModuleUnload(CUmodule hm)
{
	struct fc_module *m = (struct fc_module *)hm;
	if (m == NULL || g_current != m->ctx)
		return m == NULL ? CUDA_ERROR_INVALID_HANDLE : CUDA_ERROR_INVALID_CONTEXT;
	pthread_mutex_lock(&g_mu);
	m->ctx->modules--;
	g_live_modules--;
	pthread_mutex_unlock(&g_mu);
	fc_sync_context(m->ctx);
	free(m);
	return CUDA_SUCCESS;
}

FC_API CUresult cuModuleGetFunction(CUfunction *pf, CUmodule hm, const char *name)
{
	struct fc_module *m = (struct fc_module *)hm;
	struct fc_ctx *c;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuModuleGetFunction", &c, NULL);
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS)
		return r;
	if (m == NULL || m->ctx != c)
		return CUDA_ERROR_INVALID_HANDLE;
	for (int i = 0; i < m->nfuncs; i++) {
		if (strcmp(m->funcs[i].name, name) != 0)
			continue;
		if (m->funcs[i].impl == NULL) {
			fc_log("cuModuleGetFunction: %s is in the PTX but has no emulated body in fakecuda.c", name);
			return CUDA_ERROR_NOT_SUPPORTED;
		}
		*pf = (CUfunction)&m->funcs[i];
		return CUDA_SUCCESS;
	}
	return CUDA_ERROR_NOT_FOUND;
}

static void fc_run_launch(const struct fc_op *op)
{
	op->fn->impl->body(op->args, op->grid, op->block);
}

FC_API CUresult cuLaunchKernel(CUfunction hf, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
			       unsigned int by, unsigned int bz, unsigned int shared, CUstream hs, void **params,
			       void **extra)
{
	struct fc_func *f = (struct fc_func *)hf;
	struct fc_ctx *c;
	CUresult fault;
	pthread_mutex_lock(&g_mu);
	CUresult r = fc_begin_locked("cuLaunchKernel", &c, &fault);
	if (r == CUDA_SUCCESS)
		r = fc_stream_check_locked("cuLaunchKernel", (struct fc_stream *)hs, c);
	if (r == CUDA_SUCCESS && (f == NULL || f->module->ctx != c))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS && (shared != 0 || extra != NULL || params == NULL)) {
		fc_log("cuLaunchKernel %s: dynamic shared memory and `extra` are not emulated; params are required",
		       f->name);
		r = CUDA_ERROR_NOT_SUPPORTED;
	}
	if (r == CUDA_SUCCESS && (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gx > 2147483647u ||
				  gy > 65535 || gz > 65535 || bx > 1024 || by > 1024 || bz > 64 ||
				  (unsigned long long)bx * by * bz > 1024)) {
		fc_log("cuLaunchKernel %s: grid (%u,%u,%u) block (%u,%u,%u) is outside the device's limits", f->name, gx,
		       gy, gz, bx, by, bz);
		r = CUDA_ERROR_INVALID_VALUE;
	}
	if (r == CUDA_SUCCESS && f->maxntid && (unsigned long long)bx * by * bz > f->maxntid) {
		fc_log("cuLaunchKernel %s: %u threads per block, the PTX's .maxntid allows %u", f->name, bx * by * bz,
		       f->maxntid);
		r = CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
	}
	struct fc_op *op = NULL;
	if (r == CUDA_SUCCESS && (op = calloc(1, sizeof *op)) == NULL)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		/* The driver copies the parameter values at launch time. */
		for (int i = 0; i < f->nparams; i++) {
			uint64_t v = 0;
			memcpy(&v, params[i], (size_t)f->psize[i]);
			op->args[i] = v;
			if (f->impl->sig[i] == 'p' && fc_find_locked((uintptr_t)v, 1, FC_DEVICE_MEMORY) == NULL) {
				fc_log("cuLaunchKernel %s: parameter %d (%#llx) does not point into live device memory: "
				       "the kernel would fault",
				       f->name, i, (unsigned long long)v);
				fault = CUDA_ERROR_ILLEGAL_ADDRESS;
			} else if (f->impl->sig[i] == 'p' && r == CUDA_SUCCESS) {
				char call[128], what[32];
				snprintf(call, sizeof call, "cuLaunchKernel %s", f->name);
				snprintf(what, sizeof what, "parameter %d", i);
				r = fc_check_synced_locked(call, what, (uintptr_t)v);
			}
		}
		op->kind = FC_OP_LAUNCH;
		op->fn = f;
		op->fault = fault;
		op->grid[0] = gx, op->grid[1] = gy, op->grid[2] = gz;
		op->block[0] = bx, op->block[1] = by, op->block[2] = bz;
	}
	pthread_mutex_unlock(&g_mu);
	if (r != CUDA_SUCCESS) {
		free(op);
		return r;
	}
	fc_enqueue((struct fc_stream *)hs, op);
	return CUDA_SUCCESS;
}

/* ---- control, for tests ---------------------------------------------- */

/* stoker_fakecuda_fail makes the nth next call (1 = the next one) of the
 * driver function `call` (its exported name, e.g. cuMemAlloc_v2) fail
 * with `code`. With async set, the call succeeds and the error surfaces
 * when its queued work runs (copies and launches), as a fault on a GPU
 * does. Returns 0, or -1 for bad arguments. */
FC_API int stoker_fakecuda_fail(const char *call, long nth, int code, int async)
{
	if (call == NULL || nth < 1 || code == 0 || strlen(call) >= sizeof ((struct fc_fault *)0)->call)
		return -1;
	struct fc_fault *f = calloc(1, sizeof *f);
	if (f == NULL)
		return -1;
	strcpy(f->call, call);
	f->countdown = nth;
	f->code = (CUresult)code;
	f->async = async;
	pthread_mutex_lock(&g_mu);
	f->next = g_faults;
	g_faults = f;
	pthread_mutex_unlock(&g_mu);
	return 0;
}

/* STOKER_FAKECUDA_FAIL: comma-separated call:nth:code[:async]. Holds g_mu. */
static void fc_parse_faults(const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char call[64];
		long nth;
		int code;
		char mode[16] = "";
		if (sscanf(t, "%63[^:]:%ld:%d:%15s", call, &nth, &code, mode) < 3 || nth < 1) {
			fc_log("STOKER_FAKECUDA_FAIL: cannot read \"%s\"; want call:nth:code[:async]", t);
			continue;
		}
		struct fc_fault *f = calloc(1, sizeof *f);
		strcpy(f->call, call);
		f->countdown = nth;
		f->code = (CUresult)code;
		f->async = strcmp(mode, "async") == 0;
		f->next = g_faults;
		g_faults = f;
	}
	free(copy);
}

/* stoker_fakecuda_stat returns a counter: the number of calls of a driver
 * function by its exported name, or one of live_device_bytes,
 * peak_device_bytes, live_pinned_bytes, live_allocations, live_contexts,
 * live_modules, live_streams, live_events, max_busy_streams (the most
 * streams seen executing work at the same moment), left_at_destroy (what
 * healthy contexts still held when destroyed). 0 for a function never
 * called. */
FC_API long long stoker_fakecuda_stat(const char *name)
{
	long long v;
	pthread_mutex_lock(&g_mu);
	if (strcmp(name, "live_device_bytes") == 0)
		v = (long long)g_device_bytes;
	else if (strcmp(name, "peak_device_bytes") == 0)
		v = (long long)g_device_peak;
	else if (strcmp(name, "live_pinned_bytes") == 0)
		v = (long long)g_pinned_bytes;
	else if (strcmp(name, "live_allocations") == 0)
		v = (long long)g_nallocs;
	else if (strcmp(name, "live_contexts") == 0)
		v = g_live_contexts;
	else if (strcmp(name, "live_modules") == 0)
		v = g_live_modules;
	else if (strcmp(name, "live_streams") == 0)
		v = g_live_streams;
	else if (strcmp(name, "live_events") == 0)
		v = g_live_events;
	else if (strcmp(name, "max_busy_streams") == 0)
		v = g_max_busy_streams;
	else if (strcmp(name, "left_at_destroy") == 0)
		v = g_left_at_destroy;
	else {
		v = 0;
		for (int i = 0; i < FC_MAX_COUNTED && g_counts[i].name; i++)
			if (strcmp(g_counts[i].name, name) == 0)
				v = g_counts[i].calls;
	}
	pthread_mutex_unlock(&g_mu);
	return v;
}

/* stoker_fakecuda_reset_max_busy_streams starts a new observation window. */
FC_API void stoker_fakecuda_reset_max_busy_streams(void)
{
	pthread_mutex_lock(&g_mu);
	g_max_busy_streams = g_busy_streams;
	pthread_mutex_unlock(&g_mu);
}

/* Called by every driver function this stand-in does not emulate
 * (unsupported.c is generated from the stub library's symbol list). */
FC_API int stoker_fakecuda_unsupported(const char *name)
{
	fc_log("%s is not emulated (kernels/fakecuda/fakecuda.c)", name);
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* stoker_fakecuda_set_delay_us makes every queued copy and launch wait
 * this long before it runs (0: none), so that work on different streams
 * overlaps in time and a result read before it is waited for is stale. */
FC_API void stoker_fakecuda_set_delay_us(long us)
{
	pthread_mutex_lock(&g_mu);
	g_delay_us = us;
	pthread_mutex_unlock(&g_mu);
}

/* stoker_fakecuda_pause(1) holds every stream before its next copy,
 * launch or event record; stoker_fakecuda_pause(0) lets them go on. A
 * test uses it to keep a batch in flight for as long as it needs. */
FC_API void stoker_fakecuda_pause(int on)
{
	pthread_mutex_lock(&g_mu);
	g_paused = on;
	pthread_cond_broadcast(&g_pause_cv);
	pthread_mutex_unlock(&g_mu);
}

/* stoker_fakecuda_set_memory caps device memory at `bytes` from now on
 * (allocations already made stay). */
FC_API void stoker_fakecuda_set_memory(unsigned long long bytes)
{
	pthread_mutex_lock(&g_mu);
	g_memory_cap = (size_t)bytes;
	pthread_mutex_unlock(&g_mu);
}
