package image

import (
	stdimage "image"
	"image/color"
	"image/gif"
	"io"
)

// decodeGIF decodes a GIF's first frame as PIL opens it: the frame placed
// on the logical screen, and its transparent index keeping the colour its
// colour table gives it (PIL's convert("RGB") ignores transparency; Go's
// decoder makes that index transparent black).
func decodeGIF(r io.Reader, data []byte, cfg stdimage.Config) (stdimage.Image, error) {
	m, err := gif.Decode(r)
	if err != nil {
		return nil, err
	}
	frame := m.(*stdimage.Paletted)
	transparent, ok := gifTransparency(data)
	if ok { // the index lies in the frame's table, so in Go's palette
		frame.Palette[transparent.index] = transparent.colour
	}
	return onScreen(frame, cfg, transparent.index), nil
}

// gifTransparent is a GIF frame's transparent index and the colour its
// colour table gives that index.
type gifTransparent struct {
	index  int
	colour color.RGBA
}

// gifTransparency walks a GIF's blocks up to its first image and returns
// the transparent index its graphic control extension sets, with that
// index's colour in the frame's table (its local table, else the global
// one). ok is false when the first frame has no transparent index (index
// is 0 then) or the index lies outside its table (Go's decoder extends
// the palette with transparent black for it). The walk stops at anything
// malformed: decoding reports that.
func gifTransparency(data []byte) (t gifTransparent, ok bool) {
	const header = 6 + 7 // signature and version, logical screen descriptor
	if len(data) < header {
		return t, false
	}
	var global []byte
	pos := header
	if flags := data[10]; flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if pos+n > len(data) {
			return t, false
		}
		global = data[pos : pos+n]
		pos += n
	}
	has := false
	for pos < len(data) {
		switch data[pos] {
		case 0x21: // extension: label, then sub-blocks
			if pos+2 > len(data) {
				return t, false
			}
			label := data[pos+1]
			pos += 2
			if label == 0xF9 && pos+6 <= len(data) && data[pos] == 4 && data[pos+1]&1 != 0 {
				t.index, has = int(data[pos+4]), true
			}
			for pos < len(data) && data[pos] != 0 {
				pos += 1 + int(data[pos])
			}
			pos++
		case 0x2C: // the first image descriptor
			if !has || pos+10 > len(data) {
				return t, false
			}
			table := global
			if flags := data[pos+9]; flags&0x80 != 0 {
				n := 3 << (flags&7 + 1)
				if pos+10+n > len(data) {
					return t, false
				}
				table = data[pos+10 : pos+10+n]
			}
			if i := t.index * 3; i+3 <= len(table) {
				t.colour = color.RGBA{table[i], table[i+1], table[i+2], 0xFF}
				return t, true
			}
			return t, false
		default: // trailer, or not a GIF block
			return t, false
		}
	}
	return t, false
}

// onScreen places a GIF's first frame on its logical screen as PIL does:
// a screen-sized image of fill (the frame's transparent index, else 0)
// with the frame at its offset. A frame that covers the screen is returned
// as it is.
func onScreen(m *stdimage.Paletted, cfg stdimage.Config, fill int) *stdimage.Paletted {
	screen := stdimage.Rect(0, 0, cfg.Width, cfg.Height)
	if m.Rect == screen {
		return m
	}
	out := stdimage.NewPaletted(screen, m.Palette)
	if fill != 0 {
		for i := range out.Pix {
			out.Pix[i] = uint8(fill)
		}
	}
	r := m.Rect.Intersect(screen)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(out.Pix[out.PixOffset(r.Min.X, y):out.PixOffset(r.Max.X, y)], m.Pix[m.PixOffset(r.Min.X, y):])
	}
	return out
}
