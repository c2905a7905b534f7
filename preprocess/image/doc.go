// Package image is stoker's CPU image pipeline: it decodes image files
// (JPEG, PNG, GIF, BMP, WebP, and binary PPM/PGM for pixels decoded
// upstream) and turns them into the tensors torchvision's
// ImageNet evaluation transform produces on PIL images:
//
//	PIL Image.open(f).convert("RGB") → Resize(256) (antialiased bilinear)
//	→ CenterCrop(224) → ToTensor → Normalize(mean, std)
//
// The result matches torchvision within one uint8 level where decoding is
// identical (PNG, GIF, BMP, PPM/PGM, and JPEG decoded with libjpeg-turbo under the
// turbojpeg build tag), and within two levels with the pure-Go JPEG
// decoder, whose inverse DCT rounds differently from libjpeg-turbo's (three
// on small JPEGs, where the resize averages little).
//
// The package reproduces, in its own code:
//   - libjpeg-turbo's "fancy" chroma upsampling (triangle interpolation for
//     4:2:0, 4:2:2 and 4:4:0) and its fixed-point YCbCr→RGB conversion, on
//     the planes Go's image/jpeg decodes;
//   - PIL's CMYK→RGB conversion for Adobe CMYK/YCCK JPEGs;
//   - PIL's antialiased bilinear resampling (Resample.c): a separable
//     triangle filter whose support widens with the downscale factor,
//     22-bit fixed-point weights, the horizontal pass first, rounding and
//     clamping to uint8 between the passes, and a pass skipped when its
//     size does not change;
//   - torchvision's size arithmetic: the shorter side becomes Spec.Resize,
//     the longer int(Resize*long/short) (truncated), and the crop offset is
//     int(round((size-Crop)/2)) with Python's round-half-to-even.
//
// Only the output pixels the center crop keeps are computed: the resampling
// plan (AxisPlan) is restricted to the kept samples, which gives the same
// values as resizing the whole image and cropping afterwards. Both passes
// run in AVX2 assembly (internal/resample) on CPUs that have it; the Go
// kernels compute the same integers and are used otherwise, or everywhere
// with the purego build tag. The turbojpeg build tag decodes JPEGs with
// libjpeg-turbo through cgo, as PIL does, for identical pixels.
//
// Known, documented differences from PIL:
//   - EXIF orientation is ignored, as PIL's Image.open and torchvision do.
//   - 16-bit grayscale PNGs: PIL opens them in mode "I" and convert("RGB")
//     clips values above 255 to 255; stoker reproduces this clipping so the
//     tensors agree (the image is mostly white in both). 16-bit colour PNGs
//     keep the high byte of each sample, as PIL does.
//   - Alpha is dropped without compositing, as PIL's convert("RGB") does.
//   - GIF: the first frame, placed on the logical screen as PIL does (the
//     transparent index, else index 0, around a frame smaller than the
//     screen); the transparent index keeps its colour-table RGB, as PIL's
//     convert("RGB") gives it.
//   - Animated WebP is refused as unsupported (PIL reads its first frame).
//   - WebP (lossy) goes through golang.org/x/image/webp, whose chroma
//     upsampling differs from libwebp's; no exactness target applies there.
//
// Bad items (undecodable, truncated, unsupported, empty, over Spec.MaxBytes
// or Spec.MaxPixels) fail alone with errors wrapping preprocess.ErrBadInput;
// image dimensions are read from the header and checked before any pixel
// memory is allocated.
package image
