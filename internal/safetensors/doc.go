// Package safetensors encodes and decodes the safetensors file format, the
// payload of every tensor message stoker publishes.
//
// A safetensors file is
//
//	8 bytes   N, the header length, unsigned little-endian
//	N bytes   a JSON object, padded with spaces so that N is a multiple of 8
//	the rest  the tensors' raw little-endian bytes
//
// The JSON object maps each tensor name to {"dtype", "shape", "data_offsets"}
// and may hold a "__metadata__" object of string values. data_offsets are
// [begin, end) byte offsets relative to the first byte after the header.
//
// Layout chosen by Encode: the header lists "__metadata__" first (its keys
// sorted, omitted when there is no metadata), then the tensors in the order
// of the slice given to Encode; the data section holds the tensors back to
// back in that same order, with no gaps. The reference implementation sorts
// tensors by alignment and name instead; readers do not depend on the order.
//
// Decode accepts any conforming file, whatever its order, and returns the
// tensors in the order the header lists them, so Decode(Encode(x)) == x.
// It is strict in the way the reference implementation is: the tensors must
// cover the data section exactly, with no overlap, gap or trailing byte.
//
// DType strings are the preprocess.DType values (F32, F16, BF16, U8, I64,
// I32); any other dtype is refused on both sides.
package safetensors
