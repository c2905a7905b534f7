package image

import stdimage "image"

// Binary PPM (P6, RGB) and PGM (P5, grey) with 8-bit samples: the netpbm
// formats that carry already decoded pixels, for producers that decode
// upstream (a video decoder's frames, a camera's raw output) and for
// measuring the transform alone (`stoker bench --synthetic-format ppm`).
//
// The header is the magic number, the width, the height and the maximum
// sample value as ASCII decimals separated by whitespace, with comments
// from '#' to the end of a line allowed between them; exactly one
// whitespace byte follows the maximum value, then the rows, top to bottom,
// width×channels bytes each. Only a maximum of 255 is read: other values
// scale the samples (PIL rescales them, stoker does not) and the plain
// (ASCII) variants P1–P4 are not read either; both are rejected as
// unsupported. Bytes after the raster (a second image of a multi-image
// file) are ignored, as PIL ignores them.

// pnmHeader is what a PNM header says.
type pnmHeader struct {
	channels      int // 1 (P5) or 3 (P6)
	width, height int
	raster        int // offset of the first pixel byte
}

// isPNMSpace reports the whitespace netpbm allows between header fields.
func isPNMSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// parsePNMHeader reads the header of a P5 or P6 image. Errors wrap
// preprocess.ErrBadInput and name what is wrong.
func parsePNMHeader(data []byte) (pnmHeader, error) {
	var h pnmHeader
	switch {
	case len(data) < 2 || data[0] != 'P':
		return h, badInput(ErrUnsupported, "pnm: no P5 or P6 magic number")
	case data[1] == '6':
		h.channels = 3
	case data[1] == '5':
		h.channels = 1
	case data[1] >= '1' && data[1] <= '4':
		return h, badInput(ErrUnsupported, "pnm: P%c (plain or bitmap netpbm) is not read; want binary P5 (grey) or P6 (RGB) with maximum value 255", data[1])
	default:
		return h, badInput(ErrUnsupported, "pnm: magic number P%c is not read; want P5 or P6", data[1])
	}
	i := 2
	// field skips whitespace and comments, then reads one decimal number.
	field := func(name string) (int, error) {
		for i < len(data) && (isPNMSpace(data[i]) || data[i] == '#') {
			if data[i] == '#' {
				for i < len(data) && data[i] != '\n' && data[i] != '\r' {
					i++
				}
				continue
			}
			i++
		}
		if i == len(data) {
			return 0, badInput(ErrTruncated, "pnm: truncated after %d bytes (header ends before the %s)", len(data), name)
		}
		start, v := i, 0
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			if v > 1<<24 {
				return 0, badInput(nil, "pnm: %s %s... is too large", name, data[start:i])
			}
			v = v*10 + int(data[i]-'0')
			i++
		}
		if i == start {
			return 0, badInput(nil, "pnm: %s is not a decimal number (byte %#x at offset %d)", name, data[i], i)
		}
		if i == len(data) {
			return 0, badInput(ErrTruncated, "pnm: truncated after %d bytes (in the header's %s)", len(data), name)
		}
		if !isPNMSpace(data[i]) && data[i] != '#' {
			return 0, badInput(nil, "pnm: %s is followed by byte %#x at offset %d, not whitespace", name, data[i], i)
		}
		return v, nil
	}
	var err error
	if h.width, err = field("width"); err != nil {
		return h, err
	}
	if h.height, err = field("height"); err != nil {
		return h, err
	}
	maxval, err := field("maximum value")
	if err != nil {
		return h, err
	}
	if h.width == 0 || h.height == 0 {
		return h, badInput(nil, "pnm: header gives an empty image (%dx%d)", h.width, h.height)
	}
	if maxval != 255 {
		return h, badInput(ErrUnsupported, "pnm: maximum value %d is not read; want 255 (8-bit samples)", maxval)
	}
	if !isPNMSpace(data[i]) {
		return h, badInput(nil, "pnm: the maximum value must be followed by one whitespace byte, got %#x", data[i])
	}
	h.raster = i + 1
	return h, nil
}

// pnmConfig is parsePNMHeader for checkHeader: the format's size only.
func pnmConfig(data []byte) (w, h int, err error) {
	hd, err := parsePNMHeader(data)
	return hd.width, hd.height, err
}

// decodePNM checks a P5 or P6 item against spec's limits, then converts
// the region the regionFunc asks for (all of it when nil) into d's
// buffer. A raster shorter than the header promises is truncated; that is
// checked before any buffer is sized from the header.
func (d *decoder) decodePNM(data []byte, s Spec, region regionFunc) (*RGB, error) {
	f, cfg, err := checkHeader(data, s, &d.rd)
	if err != nil {
		return nil, err
	}
	d.hold(decodeBytes(f, cfg, data))
	hd, err := parsePNMHeader(data)
	if err != nil {
		return nil, err
	}
	rowBytes := hd.width * hd.channels
	if need := int64(hd.raster) + int64(rowBytes)*int64(hd.height); int64(len(data)) < need {
		return nil, badInput(ErrTruncated, "pnm: truncated after %d bytes (%dx%d %s needs %d)", len(data), hd.width, hd.height, pnmKind(hd.channels), need)
	}
	w, h := hd.width, hd.height
	d.rgb.Width, d.rgb.Height = w, h
	d.rgb.Pix = growU8(d.rgb.Pix, w*h*3)
	x0, y0, x1, y1 := 0, 0, w, h
	if region != nil {
		x0, y0, x1, y1 = region(w, h)
	}
	raster := data[hd.raster : hd.raster+rowBytes*h]
	if hd.channels == 1 {
		grey := &stdimage.Gray{Pix: raster, Stride: w, Rect: stdimage.Rect(0, 0, w, h)}
		if err := toRGB(&d.rgb, grey, FormatPNM, x0, y0, x1, y1, &d.rows); err != nil {
			return nil, err
		}
		return &d.rgb, nil
	}
	for y := y0; y < y1; y++ {
		copy(d.rgb.Pix[y*rowBytes+x0*3:y*rowBytes+x1*3], raster[y*rowBytes+x0*3:])
	}
	return &d.rgb, nil
}

func pnmKind(channels int) string {
	if channels == 1 {
		return "PGM"
	}
	return "PPM"
}
