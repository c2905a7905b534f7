//go:build cuda

package cudaguard

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*cuInit_fn)(unsigned int);
typedef int (*cuDeviceGetCount_fn)(int *);
typedef int (*cuGetErrorName_fn)(int, const char **);

// stoker_cuda_check returns 0 when a device is usable; otherwise 1 (no
// library), 2 (cuInit failed) or 3 (no device), with *code the CUresult
// and *detail dlerror's text or the driver's error name.
static int stoker_cuda_check(int *code, const char **detail) {
	*code = 0;
	*detail = "";
	void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) {
		const char *e = dlerror();
		*detail = e ? e : "dlopen failed";
		return 1;
	}
	cuInit_fn init = (cuInit_fn)dlsym(lib, "cuInit");
	cuDeviceGetCount_fn count = (cuDeviceGetCount_fn)dlsym(lib, "cuDeviceGetCount");
	cuGetErrorName_fn name = (cuGetErrorName_fn)dlsym(lib, "cuGetErrorName");
	if (init == NULL || count == NULL) {
		*detail = "libcuda.so.1 lacks cuInit or cuDeviceGetCount";
		return 1;
	}
	int r = init(0);
	if (r != 0) {
		*code = r;
		*detail = "unknown error";
		if (name != NULL) name(r, detail);
		return 2;
	}
	int n = 0;
	r = count(&n);
	if (r != 0 || n <= 0) {
		*code = r;
		if (r != 0 && name != NULL) name(r, detail);
		return 3;
	}
	return 0;
}
*/
import "C"

import "os"

func init() {
	if os.Getenv("STOKER_CUDAGUARD") == "off" {
		return
	}
	var code C.int
	var detail *C.char
	if f := C.stoker_cuda_check(&code, &detail); f != 0 {
		os.Stderr.WriteString(Message(Failure(f), C.GoString(detail), int(code)))
		os.Exit(1)
	}
}
