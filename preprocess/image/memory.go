package image

import (
	stdimage "image"
	"image/color"
)

// keepBufferBytes is the largest RGB buffer a decoder keeps for its next
// image (an 11-megapixel photo): a larger one, made for a rare huge image,
// is dropped after use rather than held by every pooled decoder.
const keepBufferBytes = 32 << 20

// decodeBytes estimates, from the header, the most memory decoding an
// image with Go's decoders takes (what a decoder holds against its budget,
// Spec.DecodeMemory; libjpeg-turbo's is turboBytes). Decoders allocate a
// whole image, and their working buffers, from the header's dimensions
// before they read a pixel: a few hundred bytes can declare 4000×4000
// pixels and cost hundreds of megabytes, whatever bounds the raw bytes in
// flight. The estimate covers the decoder's image and working buffers,
// and the RGB copy stoker converts into. Go's progressive JPEG decoder
// keeps every DCT coefficient as an int32 until the last scan, 4 bytes per
// component per pixel. TestDecodeEstimatesCoverAllocation holds each estimate above what
// decoding the corpus and the header-only bombs allocates.
func decodeBytes(f Format, cfg stdimage.Config, data []byte) int64 {
	px := int64(cfg.Width) * int64(cfg.Height)
	per := int64(3) // the RGB copy
	switch f {
	case FormatJPEG:
		n := int64(3)
		switch cfg.ColorModel {
		case color.GrayModel:
			n = 1
		case color.CMYKModel:
			n = 4
		}
		per += 2*n + 1 // planes padded to whole blocks, and a CMYK image
		if jpegProgressive(data) {
			per += 4 * n
		}
	case FormatPNG:
		per += 2 * pngPixelBytes(cfg.ColorModel) // the image, and the deinterlacing copy or row buffers
	case FormatGIF:
		per += 2 // the frame, and the logical screen it is placed on
	case FormatBMP:
		per += 4
	case FormatWebP:
		per += 8 // lossless: the image and its transform buffers; lossy: planes, alpha and filter rows
	}
	return px*per + 256<<10 // and inflate windows, tables, readers and rows that do not grow with the image
}

// pngPixelBytes is the size of one pixel of the image Go's PNG decoder
// returns for a header's colour model.
func pngPixelBytes(m color.Model) int64 {
	// The header does not say whether a transparent value (tRNS) follows:
	// with one, Go widens grey to NRGBA and 16-bit grey to NRGBA64.
	switch m {
	case color.Gray16Model, color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4 // grey, RGB, RGBA
}
