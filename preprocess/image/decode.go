package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdimage "image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"

	"github.com/stoker-ml/stoker/preprocess"
)

// RGB is a decoded image: packed 8-bit RGB, stride Width*3.
type RGB struct {
	Width, Height int
	Pix           []byte
}

// Format is an encoded image format recognised by its first bytes.
type Format string

// The formats DecodeRGB reads.
const (
	FormatJPEG Format = "jpeg"
	FormatPNG  Format = "png"
	FormatGIF  Format = "gif"
	FormatBMP  Format = "bmp"
	FormatWebP Format = "webp"
	FormatPNM  Format = "pnm" // binary PPM (P6) and PGM (P5), 8-bit: see pnm.go
)

// Sentinel errors, each also wrapping preprocess.ErrBadInput through the
// errors DecodeRGB returns (test with errors.Is).
var (
	ErrEmpty         = errors.New("empty item (zero bytes)")
	ErrTooLarge      = errors.New("over the size limit")
	ErrTooManyPixels = errors.New("over the pixel limit")
	ErrUnsupported   = errors.New("unsupported image format")
	ErrTruncated     = errors.New("truncated image data")
)

// badInput wraps err so that it matches both err and preprocess.ErrBadInput.
func badInput(err error, format string, args ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, args...), err: err}
}

type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }

// Reason classifies the error for metrics and dead-letter headers.
func (e *decodeError) Reason() string {
	switch e.err {
	case ErrEmpty:
		return preprocess.ReasonEmpty
	case ErrTooLarge:
		return preprocess.ReasonTooLarge
	case ErrTooManyPixels:
		return preprocess.ReasonTooManyPixels
	case ErrUnsupported:
		return preprocess.ReasonUnsupported
	}
	return preprocess.ReasonCorrupt // truncated or undecodable
}
func (e *decodeError) Unwrap() []error {
	if e.err == nil {
		return []error{preprocess.ErrBadInput}
	}
	return []error{preprocess.ErrBadInput, e.err}
}

// sniff recognises the format from the magic bytes.
func sniff(data []byte) (Format, error) {
	switch {
	case len(data) >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff:
		return FormatJPEG, nil
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG, nil
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return FormatGIF, nil
	case bytes.HasPrefix(data, []byte("BM")):
		return FormatBMP, nil
	case len(data) >= 12 && bytes.HasPrefix(data, []byte("RIFF")) && string(data[8:12]) == "WEBP":
		return FormatWebP, nil
	case len(data) >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && isPNMSpace(data[2]):
		return FormatPNM, nil
	}
	n := min(len(data), 8)
	return "", badInput(ErrUnsupported, "unsupported image format (first bytes % x; want JPEG, PNG, GIF, BMP, WebP, binary PPM or PGM)", data[:n])
}

// checkHeader applies the size limits: MaxBytes on the encoded item, then
// MaxPixels on the dimensions read from the header, before any decoding.
func checkHeader(data []byte, s Spec, r *bytes.Reader) (Format, stdimage.Config, error) {
	if len(data) == 0 {
		return "", stdimage.Config{}, badInput(ErrEmpty, "empty item (zero bytes)")
	}
	if s.MaxBytes > 0 && int64(len(data)) > s.MaxBytes {
		return "", stdimage.Config{}, badInput(ErrTooLarge, "item is %d bytes, over image.max_bytes %d", len(data), s.MaxBytes)
	}
	f, err := sniff(data)
	if err != nil {
		return "", stdimage.Config{}, err
	}
	var cfg stdimage.Config
	r.Reset(data)
	switch f {
	case FormatJPEG:
		cfg, err = jpeg.DecodeConfig(r)
	case FormatPNG:
		cfg, err = png.DecodeConfig(r)
	case FormatGIF:
		cfg, err = gif.DecodeConfig(r)
	case FormatBMP:
		cfg, err = bmp.DecodeConfig(r)
	case FormatWebP:
		if animatedWebP(data) {
			return f, cfg, badInput(ErrUnsupported, "webp: animated WebP is not read (PIL would take its first frame)")
		}
		cfg, err = webp.DecodeConfig(r)
	case FormatPNM:
		if cfg.Width, cfg.Height, err = pnmConfig(data); err != nil {
			return f, cfg, err // already says what is wrong
		}
	}
	if err != nil {
		return f, cfg, decodeFailure(f, data, "reading the header", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return f, cfg, badInput(nil, "%s: header gives an empty image (%dx%d)", f, cfg.Width, cfg.Height)
	}
	px := int64(cfg.Width) * int64(cfg.Height)
	if s.MaxPixels > 0 && px > s.MaxPixels {
		return f, cfg, badInput(ErrTooManyPixels, "%s: %dx%d is %d pixels, over image.max_pixels %d", f, cfg.Width, cfg.Height, px, s.MaxPixels)
	}
	return f, cfg, nil
}

// animatedWebP reports whether data is an extended WebP (a VP8X chunk
// first) with the animation flag set.
func animatedWebP(data []byte) bool {
	const flags = 20 // "RIFF" size "WEBP" "VP8X" size, then the flags byte
	return len(data) > flags && string(data[12:16]) == "VP8X" && data[flags]&0x02 != 0
}

// decodeFailure turns a decoder's error into a bad-input error a person understands.
func decodeFailure(f Format, data []byte, doing string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return badInput(ErrTruncated, "%s: truncated after %d bytes (%s)", f, len(data), doing)
	}
	if msg := err.Error(); strings.Contains(msg, "not enough pixel data") || strings.Contains(msg, "not enough image data") {
		return badInput(ErrTruncated, "%s: truncated after %d bytes (%v)", f, len(data), err)
	}
	if errors.Is(err, bmp.ErrUnsupported) {
		return badInput(ErrUnsupported, "%s: unsupported variant (compressed or unusual bit depth BMPs are not read): %v", f, err)
	}
	var fe jpeg.FormatError
	if errors.As(err, &fe) && f == FormatJPEG && fe == "missing SOS marker" {
		return badInput(ErrTruncated, "%s: truncated after %d bytes (no image data)", f, len(data))
	}
	var ue jpeg.UnsupportedError
	if errors.As(err, &ue) {
		return badInput(ErrUnsupported, "%s: unsupported feature: %v", f, err)
	}
	return badInput(nil, "%s: cannot decode (%s): %v", f, doing, err)
}

// decodeImage checks the header, holds the decode budget for it, and
// decodes with the format's decoder. It returns the header's description
// too: a GIF's logical screen size, a PNG's colour model before Go's
// decoder widened it.
func (d *decoder) decodeImage(data []byte, s Spec) (stdimage.Image, Format, stdimage.Config, error) {
	r := &d.rd
	f, cfg, err := checkHeader(data, s, r)
	if err != nil {
		return nil, f, cfg, err
	}
	d.hold(decodeBytes(f, cfg, data))
	var m stdimage.Image
	r.Reset(data)
	switch f {
	case FormatJPEG:
		if err := checkJPEGComplete(data); err != nil {
			return nil, f, cfg, err
		}
		m, err = jpeg.Decode(r)
	case FormatPNG:
		m, err = png.Decode(r)
	case FormatGIF:
		m, err = decodeGIF(r, data, cfg)
	case FormatBMP:
		m, err = bmp.Decode(r)
	case FormatWebP:
		m, err = webp.Decode(r)
	}
	if err != nil {
		return nil, f, cfg, decodeFailure(f, data, "decoding", err)
	}
	b := m.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, f, cfg, badInput(nil, "%s: decoded image is empty", f)
	}
	return m, f, cfg, nil
}

// checkJPEGComplete rejects a JPEG whose entropy-coded data stops before
// the end-of-image marker. Go's decoder fills the missing blocks with grey
// in some such cases instead of failing; PIL refuses them ("image file is
// truncated"). Data after the EOI marker (trailers some cameras write) is
// allowed.
func checkJPEGComplete(data []byte) error {
	_, scan, err := jpegHeaders(data)
	if err != nil {
		return err
	}
	// A stray FFD9 inside a scan cannot occur: the encoder stuffs every FF
	// data byte with 00.
	if bytes.LastIndex(data[scan:], []byte{0xff, 0xd9}) < 0 {
		return badInput(ErrTruncated, "jpeg: truncated after %d bytes (no end-of-image marker)", len(data))
	}
	return nil
}

// jpegHeaders walks a JPEG's marker segments up to its first scan and
// returns the last start-of-frame marker seen and where the scan's
// entropy-coded data begins.
func jpegHeaders(data []byte) (sof byte, scan int, err error) {
	i := 2
	for {
		for i < len(data) && data[i] == 0xff {
			i++
		}
		if i >= len(data) {
			return sof, 0, badInput(ErrTruncated, "jpeg: truncated after %d bytes (in the headers)", len(data))
		}
		marker := data[i]
		i++
		if marker == 0xd9 {
			return sof, 0, badInput(ErrTruncated, "jpeg: end of image before any image data")
		}
		if marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7) {
			continue // markers without a length
		}
		if i+2 > len(data) {
			return sof, 0, badInput(ErrTruncated, "jpeg: truncated after %d bytes (in the headers)", len(data))
		}
		n := int(data[i])<<8 | int(data[i+1])
		if n < 2 {
			return sof, 0, badInput(nil, "jpeg: marker %02X has invalid length %d", marker, n)
		}
		i += n
		if i > len(data) {
			return sof, 0, badInput(ErrTruncated, "jpeg: truncated after %d bytes (in a marker segment)", len(data))
		}
		if marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc {
			sof = marker // not DHT, JPG or DAC, which share the range
		}
		if marker == 0xda { // start of scan: the entropy-coded data follows
			return sof, i, nil
		}
	}
}

// jpegProgressive reports whether a JPEG's frame is progressive (SOF2,
// SOF6, SOF10 or SOF14).
func jpegProgressive(data []byte) bool {
	sof, _, _ := jpegHeaders(data)
	return sof == 0xc2 || sof == 0xc6 || sof == 0xca || sof == 0xce
}

// DecodeRGB checks the item against spec's limits (MaxBytes, then MaxPixels
// from the header), decodes it and converts it to packed RGB exactly as the
// Processor does. Errors wrap preprocess.ErrBadInput.
func DecodeRGB(data []byte, spec Spec) (*RGB, error) {
	var d decoder
	img, err := d.decode(data, spec)
	defer d.release()
	if err != nil {
		return nil, err
	}
	out := &RGB{Width: img.Width, Height: img.Height, Pix: make([]byte, len(img.Pix))}
	copy(out.Pix, img.Pix)
	return out, nil
}

// Decoder decodes items one after another into buffers it keeps from one
// item to the next, so that a stream of images allocates little. It is not
// safe for concurrent use: keep one per goroutine. The zero Decoder is
// ready to use.
type Decoder struct{ d decoder }

// Limit makes the decoder hold each image's estimated decode memory
// (decodeBytes, from its header) against b from its header until its
// pixels are no longer needed. Decoders sharing one budget decode at most
// its size at once; an image over it is decoded alone.
func (d *Decoder) Limit(b *preprocess.Budget) { d.d.budget = b }

// DecodeWindow checks and decodes data as DecodeRGB does, calls window
// with the image's size to learn which pixels are needed, converts only
// those to RGB, and returns them as a new image of the window's size
// [x0,x1)×[y0,y1), with the whole image's width and height. A JPEG is
// still entropy-decoded whole; only the colour conversion and the copy are
// limited to the window. The GPU path uses it to keep and upload only the
// pixels its kernel reads.
func (d *Decoder) DecodeWindow(data []byte, spec Spec, window func(width, height int) (x0, y0, x1, y1 int)) (win *RGB, width, height int, err error) {
	var x0, y0, x1, y1 int
	var windowErr error
	img, err := d.d.decodeRegion(data, spec, func(w, h int) (int, int, int, int) {
		x0, y0, x1, y1 = window(w, h)
		if x0 < 0 || y0 < 0 || x1 > w || y1 > h || x0 >= x1 || y0 >= y1 {
			windowErr = fmt.Errorf("image: window [%d,%d)x[%d,%d) is not inside the %dx%d image", x0, x1, y0, y1, w, h)
			return 0, 0, 0, 0 // convert nothing
		}
		return x0, y0, x1, y1
	})
	defer d.d.release()
	if err != nil {
		return nil, 0, 0, err
	}
	if windowErr != nil {
		return nil, 0, 0, windowErr
	}
	win = &RGB{Width: x1 - x0, Height: y1 - y0, Pix: make([]byte, (x1-x0)*(y1-y0)*3)}
	stride, rb := img.Width*3, win.Width*3
	for y := y0; y < y1; y++ {
		copy(win.Pix[(y-y0)*rb:(y-y0+1)*rb], img.Pix[y*stride+x0*3:])
	}
	return win, img.Width, img.Height, nil
}

// decoder decodes into buffers it keeps from one item to the next.
type decoder struct {
	rd   bytes.Reader // reused so that decoding allocates no reader per item
	rgb  RGB
	rows rowScratch
	tj   turboState
	// budget, when set, bounds the memory of the images being decoded by
	// every decoder sharing it; held bytes of it are held from an item's
	// header until release.
	budget *preprocess.Budget
	held   int64
}

// hold holds n bytes of the budget, when there is one, until release: a
// decoder calls it once an item's header has passed the limits, before it
// allocates for the image.
func (d *decoder) hold(n int64) {
	if d.budget == nil {
		return
	}
	_ = d.budget.Acquire(context.Background(), n) // waits for room; never fails without a deadline
	d.held = n
}

// release gives back the budget the last decoding held, once its pixels
// are no longer needed, and drops a buffer grown for a huge image.
func (d *decoder) release() {
	d.budget.Release(d.held)
	d.held = 0
	if cap(d.rgb.Pix) > keepBufferBytes {
		d.rgb.Pix = nil
	}
	d.tj.shrink(keepBufferBytes)
}

// decode returns a decoded image whose pixels live in d's buffers. The
// region [x0,x1)×[y0,y1) is converted; nil region means the whole image.
func (d *decoder) decode(data []byte, s Spec) (*RGB, error) {
	return d.decodeRegion(data, s, nil)
}

// regionFunc tells the decoder which pixels of a w×h image are needed. A
// decoder calls it once for every image it decodes, with the image's size,
// before returning.
type regionFunc func(w, h int) (x0, y0, x1, y1 int)

func (d *decoder) decodeRegion(data []byte, s Spec, region regionFunc) (*RGB, error) {
	if rgb, ok, err := d.tj.decode(data, s, &d.rgb, d.hold); ok || err != nil {
		if err == nil && region != nil {
			region(rgb.Width, rgb.Height) // libjpeg-turbo has converted the whole image
		}
		return rgb, err
	}
	if f, _ := sniff(data); f == FormatPNM {
		return d.decodePNM(data, s, region)
	}
	m, f, cfg, err := d.decodeImage(data, s)
	if err != nil {
		return nil, err
	}
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	d.rgb.Width, d.rgb.Height = w, h
	d.rgb.Pix = growU8(d.rgb.Pix, w*h*3)
	x0, y0, x1, y1 := 0, 0, w, h
	if region != nil {
		x0, y0, x1, y1 = region(w, h)
	}
	if g, ok := m.(*stdimage.NRGBA64); ok && f == FormatPNG && cfg.ColorModel == color.Gray16Model {
		// 16-bit grey with a transparent value, which Go widens to
		// NRGBA64: PIL keeps mode "I" and clips as for any 16-bit grey.
		clipGray16(&d.rgb, g.Pix, g.Stride, 8, x0, y0, x1, y1)
		return &d.rgb, nil
	}
	if err := toRGB(&d.rgb, m, f, x0, y0, x1, y1, &d.rows); err != nil {
		return nil, err
	}
	return &d.rgb, nil
}

// clipGray16 converts the region of big-endian 16-bit grey samples, size
// bytes apart, as PIL's convert("RGB") of mode "I" does: clipped at 255.
func clipGray16(dst *RGB, pix []byte, stride, size, x0, y0, x1, y1 int) {
	rb := dst.Width * 3
	for y := y0; y < y1; y++ {
		src := pix[y*stride:]
		d := dst.Pix[y*rb:]
		for x := x0; x < x1; x++ {
			v := int(src[x*size])<<8 | int(src[x*size+1])
			u := uint8(min(v, 255))
			d[x*3], d[x*3+1], d[x*3+2] = u, u, u
		}
	}
}

// toRGB converts the region of m into dst (already sized), as PIL's
// convert("RGB") would for the mode PIL opens the file in.
func toRGB(dst *RGB, m stdimage.Image, f Format, x0, y0, x1, y1 int, rs *rowScratch) error {
	b := m.Bounds()
	stride := dst.Width * 3
	switch m := m.(type) {
	case *stdimage.YCbCr:
		if f == FormatWebP {
			webpToRGB(dst.Pix, stride, m, x0, y0, x1, y1, rs)
			return nil
		}
		yccToRGB(dst.Pix, stride, m, x0, y0, x1, y1, rs)
		return nil
	case *stdimage.NYCbCrA: // lossy WebP with alpha: alpha dropped
		if f == FormatWebP {
			webpToRGB(dst.Pix, stride, &m.YCbCr, x0, y0, x1, y1, rs)
		} else {
			yccToRGB(dst.Pix, stride, &m.YCbCr, x0, y0, x1, y1, rs)
		}
		return nil
	case *stdimage.Gray:
		for y := y0; y < y1; y++ {
			src := m.Pix[(y)*m.Stride:]
			d := dst.Pix[y*stride:]
			for x := x0; x < x1; x++ {
				v := src[x]
				d[x*3], d[x*3+1], d[x*3+2] = v, v, v
			}
		}
		return nil
	case *stdimage.CMYK:
		for y := y0; y < y1; y++ {
			src := m.Pix[y*m.Stride:]
			d := dst.Pix[y*stride:]
			for x := x0; x < x1; x++ {
				p := src[x*4 : x*4+4]
				d[x*3], d[x*3+1], d[x*3+2] = cmykToRGB(p[0], p[1], p[2], p[3])
			}
		}
		return nil
	case *stdimage.RGBA: // opaque 8-bit RGB (PNG, BMP)
		copyRGBFrom4(dst.Pix, stride, m.Pix, m.Stride, x0, y0, x1, y1)
		return nil
	case *stdimage.NRGBA: // alpha dropped without compositing, as PIL does
		copyRGBFrom4(dst.Pix, stride, m.Pix, m.Stride, x0, y0, x1, y1)
		return nil
	case *stdimage.RGBA64, *stdimage.NRGBA64: // 16-bit: PIL keeps the high byte
		var pix []byte
		var st int
		if v, ok := m.(*stdimage.RGBA64); ok {
			pix, st = v.Pix, v.Stride
		} else {
			v := m.(*stdimage.NRGBA64)
			pix, st = v.Pix, v.Stride
		}
		for y := y0; y < y1; y++ {
			src := pix[y*st:]
			d := dst.Pix[y*stride:]
			for x := x0; x < x1; x++ {
				d[x*3], d[x*3+1], d[x*3+2] = src[x*8], src[x*8+2], src[x*8+4]
			}
		}
		return nil
	case *stdimage.Gray16:
		// PIL opens 16-bit grey as mode "I"; convert("RGB") clips to 255.
		clipGray16(dst, m.Pix, m.Stride, 2, x0, y0, x1, y1)
		return nil
	case *stdimage.Paletted:
		var pal [256][3]uint8
		for i, c := range m.Palette {
			if i >= 256 {
				break
			}
			pal[i] = paletteRGB(c)
		}
		for y := y0; y < y1; y++ {
			src := m.Pix[y*m.Stride:]
			d := dst.Pix[y*stride:]
			for x := x0; x < x1; x++ {
				p := pal[src[x]]
				d[x*3], d[x*3+1], d[x*3+2] = p[0], p[1], p[2]
			}
		}
		return nil
	}
	// Anything else (rare decoder outputs): go through the colour model.
	for y := y0; y < y1; y++ {
		d := dst.Pix[y*stride:]
		for x := x0; x < x1; x++ {
			c := color.NRGBAModel.Convert(m.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			d[x*3], d[x*3+1], d[x*3+2] = c.R, c.G, c.B
		}
	}
	return nil
}

// paletteRGB is a palette entry's colour without alpha.
func paletteRGB(c color.Color) [3]uint8 {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]uint8{c.R, c.G, c.B}
	case color.RGBA:
		if c.A == 0xff || c.A == 0 {
			return [3]uint8{c.R, c.G, c.B}
		}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

func copyRGBFrom4(dst []byte, stride int, src []byte, sstride, x0, y0, x1, y1 int) {
	for y := y0; y < y1; y++ {
		s := src[y*sstride:]
		d := dst[y*stride:]
		for x := x0; x < x1; x++ {
			d[x*3], d[x*3+1], d[x*3+2] = s[x*4], s[x*4+1], s[x*4+2]
		}
	}
}

// cmykToRGB is PIL's cmyk2rgb: each channel is nk - c*nk/255 (rounded),
// with nk = 255 - k.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int(k)
	f := func(v uint8) uint8 {
		t := int(v)*nk + 128
		return uint8(nk - ((t>>8)+t)>>8)
	}
	return f(c), f(m), f(y)
}
