// Package resample holds the assembly kernels of preprocess/image: the
// resampler's passes and the JPEG colour conversion. They live in their own
// package because preprocess/image uses cgo under the turbojpeg build tag,
// and a cgo package cannot contain Go assembly. Each kernel computes exactly
// the integers of its pure-Go counterpart in preprocess/image (tested
// there).
package resample
