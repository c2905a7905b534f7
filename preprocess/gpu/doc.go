// Package gpu holds the GPU backends of the pipelines.
//
// TextProcessor (NewTextProcessor) is the text pipeline's: WordPiece
// (BERT-style) tokenizers only, with the tables, added tokens and
// post-processing of the CPU tokenizer it loads, so both paths give the
// same ids; byte-level BPE (ErrNotWordPiece) and WordPiece tokenizers
// beyond the kernels' limits return errors wrapping
// ErrUnsupportedTokenizer and stay on the CPU.
//
// Processor (NewImageProcessor) is the image pipeline's: a
// preprocess.Processor that decodes images on the CPU (image.DecodeRGB, in
// parallel), plans their resampling on the CPU (image.PlanAxis, the same
// coefficients the CPU path uses) and runs the fused
// resize_crop_normalize CUDA kernel once per batch through a
// *kernels.Device. Its Batch is the one image.Processor returns for the
// same items: same tensor name, dtype, shape and layout, same RowFacts and
// Failed, and the same values (see the parity tests).
//
// The package compiles in every build. Without the cuda tag there is no
// Device to give it (kernels.Open returns kernels.ErrNoCUDA), so
// NewImageProcessor and Available return kernels.ErrNoCUDA and callers
// fall back to image.NewProcessor. Tests without a GPU run the same
// Processor with the kernel emulated on the CPU
// (kernels.EmulateResizeCropNormalize).
//
// Only the decoded window each image's plans read (about 60% of a 4:3
// photo for a 256/224 resize and crop) is packed and uploaded.
//
// Errors: a bad item goes to Batch.Failed exactly as on the CPU; a GPU
// failure (out of memory, launch failure, lost device) fails the whole
// batch with a returned error that does not wrap preprocess.ErrBadInput,
// so the worker retries the batch later; it may wrap kernels.ErrDeviceLost
// (fall back to the CPU) or kernels.ErrOutOfMemory.
package gpu
