// Package cudaguard stops a `-tags cuda` build of stoker, before anything
// else runs, on a host where CUDA cannot work, with a message that says
// what is missing and which build to use instead.
//
// Why it exists: gorgonia.org/cu calls cuInit in its package init and, when
// that fails, prints a terse error and exits. Go initialises packages in
// dependency order and, among packages whose imports are all initialised,
// in the order of their import paths. This package imports only what
// gorgonia.org/cu imports too (fmt, os, unsafe, cgo) and its path
// ("github.com/stoker-ml/...") sorts before "gorgonia.org/cu", so it is
// initialised first. kernels imports it for that side effect in its cuda
// build.
//
// In a cuda build its init dlopens libcuda.so.1, calls cuInit(0) and
// cuDeviceGetCount, and on failure writes to stderr one of
//
//	no CUDA driver library (libcuda.so.1: <dlerror>)
//	CUDA driver failed to initialise: cuInit returned <NAME> (<code>)
//	no CUDA device: cuDeviceGetCount reported 0 devices
//
// followed by "use the CPU build (without -tags cuda) on this host", and
// exits with status 1. Setting STOKER_CUDAGUARD=off skips the check (and
// leaves gorgonia.org/cu's own exit in place).
//
// Note that a cuda binary links libcuda.so.1 dynamically: on a host without
// any NVIDIA driver library the dynamic loader refuses to start it before
// any Go code runs ("error while loading shared libraries: libcuda.so.1").
// The guard covers the hosts that have the library but no usable GPU.
//
// Without the cuda tag the package holds only the message formatting.
package cudaguard
