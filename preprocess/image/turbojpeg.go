//go:build turbojpeg

package image

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define STOKER_MSG_MAX 200 // libjpeg's JMSG_LENGTH_MAX

// TurboJPEG 2.1 keeps libjpeg's messages in a thread-local buffer, and a
// goroutine can change OS threads between two cgo calls, so each call and
// the reading of its message happen here, in one C call.
//
// Before decoding, the buffer is set to a known message (the one a call
// with no handle leaves); after a failed decode, *fresh says whether
// libjpeg wrote a new message. libjpeg always writes the message of a fatal
// error, but only the first warning of a decompressor's life.
static int stoker_tj_header(tjhandle h, const unsigned char *src, unsigned long n, int *hdr, char *msg, int msglen) {
	int r = tjDecompressHeader3(h, src, n, &hdr[0], &hdr[1], &hdr[2], &hdr[3]);
	if (r != 0) {
		strncpy(msg, tjGetErrorStr2(h), msglen - 1);
		msg[msglen - 1] = 0;
	}
	return r;
}

static int stoker_tj_decode(tjhandle h, const unsigned char *src, unsigned long n, unsigned char *dst,
                            int w, int pitch, int hgt, int pf, char *msg, int msglen, int *fresh) {
	int d[4];
	char before[STOKER_MSG_MAX];
	tjDecompressHeader3(NULL, NULL, 0, &d[0], &d[1], &d[2], &d[3]);
	strncpy(before, tjGetErrorStr2(NULL), sizeof before - 1);
	before[sizeof before - 1] = 0;
	int r = tjDecompress2(h, src, n, dst, w, pitch, hgt, pf, 0);
	if (r != 0) {
		const char *m = tjGetErrorStr2(h);
		*fresh = strcmp(m, before) != 0;
		strncpy(msg, m, msglen - 1);
		msg[msglen - 1] = 0;
	}
	return r;
}
*/
import "C"

import (
	"errors"
	"runtime"
	"strings"
	"unsafe"
)

// TurboJPEG reports whether this build decodes JPEGs with libjpeg-turbo
// (build tag turbojpeg: cgo and Debian's libturbojpeg0-dev). It decodes as
// PIL does (libjpeg-turbo's default islow IDCT and fancy upsampling), so
// JPEG results agree with torchvision within one level.
const TurboJPEG = true

// tjHandle owns one TurboJPEG decompressor; a cleanup destroys it when the
// worker holding it is collected.
type tjHandle struct {
	h       C.tjhandle
	cleanup runtime.Cleanup
}

// turboState is the per-goroutine TurboJPEG state.
type turboState struct {
	handle *tjHandle
	cmyk   []byte
	// The header fields TurboJPEG fills in, kept here so that passing their
	// addresses to C does not allocate per item.
	hdr   [4]C.int
	msg   [C.STOKER_MSG_MAX]C.char
	fresh C.int
}

// turboBytes estimates what libjpeg-turbo decoding a w×h JPEG of colour
// space cs takes: the RGB output, the CMYK buffer of a 4-component image,
// and libjpeg's coefficient buffers (2 bytes per component per pixel) for
// a progressive one. libjpeg's memory is C memory: Go's heap does not
// count it, the decode budget does.
func turboBytes(w, h int64, cs C.int, data []byte) int64 {
	comps, per := int64(3), int64(3+1)
	switch cs {
	case C.TJCS_GRAY:
		comps = 1
	case C.TJCS_CMYK, C.TJCS_YCCK:
		comps, per = 4, per+4
	}
	if jpegProgressive(data) {
		per += 2 * comps
	}
	return w*h*per + 256<<10
}

// shrink drops the CMYK buffer when it is larger than keep bytes.
func (t *turboState) shrink(keep int) {
	if cap(t.cmyk) > keep {
		t.cmyk = nil
	}
}

// decompress runs tjDecompress2 into out and classifies a failure.
func (t *turboState) decompress(h C.tjhandle, data, out []byte, w, pitch, hgt C.int, pf C.int) error {
	t.fresh = 0
	r := C.stoker_tj_decode(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&out[0])),
		w, pitch, hgt, pf, &t.msg[0], C.int(len(t.msg)), &t.fresh)
	if r == 0 {
		return nil
	}
	return tjFailure(C.GoString(&t.msg[0]), t.fresh != 0)
}

func (t *turboState) init() error {
	if t.handle != nil {
		return nil
	}
	h := C.tjInitDecompress()
	if h == nil {
		return badInput(nil, "jpeg: cannot start libjpeg-turbo: %s", C.GoString(C.tjGetErrorStr2(nil)))
	}
	t.handle = &tjHandle{h: h}
	t.handle.cleanup = runtime.AddCleanup(t.handle, func(h C.tjhandle) { C.tjDestroy(h) }, h)
	return nil
}

// decode decodes a JPEG with libjpeg-turbo into dst's buffer, calling hold
// with its estimated decode memory once the header passed the limits. ok
// is false for other formats, which go to the Go decoders.
func (t *turboState) decode(data []byte, s Spec, dst *RGB, hold func(int64)) (*RGB, bool, error) {
	if len(data) < 3 || data[0] != 0xff || data[1] != 0xd8 || data[2] != 0xff {
		return nil, false, nil
	}
	if s.MaxBytes > 0 && int64(len(data)) > s.MaxBytes {
		return nil, true, badInput(ErrTooLarge, "item is %d bytes, over image.max_bytes %d", len(data), s.MaxBytes)
	}
	if err := checkJPEGComplete(data); err != nil {
		return nil, true, err
	}
	if err := t.init(); err != nil {
		return nil, true, err
	}
	rgb, err := t.decodeWith(t.handle.h, data, s, dst, hold)
	if err != nil {
		// A TurboJPEG handle can stay in a failed state after an error:
		// drop it and start the next item with a fresh one.
		t.reset()
	}
	if errors.Is(err, errTurboSampling) {
		return nil, false, nil
	}
	return rgb, true, err
}

// errTurboSampling is a header whose chroma sampling TurboJPEG 2.1 has no
// name for (4:1:0, or per-component factors such as Cb 2×2 beside Cr 1×1).
// libjpeg, and so PIL, reads such files; they go to Go's decoder, which
// reads 4:1:0 and refuses the rest as unsupported.
var errTurboSampling = errors.New("jpeg: chroma sampling TurboJPEG cannot name")

func (t *turboState) reset() {
	if t.handle != nil {
		t.handle.cleanup.Stop()
		C.tjDestroy(t.handle.h)
		t.handle = nil
	}
}

func (t *turboState) decodeWith(h C.tjhandle, data []byte, s Spec, dst *RGB, hold func(int64)) (*RGB, error) {
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	hdr := &t.hdr
	msg := &t.msg
	if C.stoker_tj_header(h, src, C.ulong(len(data)), &hdr[0], &msg[0], C.int(len(msg))) != 0 {
		m := C.GoString(&msg[0])
		if strings.Contains(m, "Could not determine subsampling type") {
			return nil, errTurboSampling
		}
		return nil, badInput(nil, "jpeg: cannot read the header: %s", m)
	}
	w, hgt, cs := hdr[0], hdr[1], hdr[3]
	if w <= 0 || hgt <= 0 {
		return nil, badInput(nil, "jpeg: header gives an empty image (%dx%d)", int(w), int(hgt))
	}
	px := int64(w) * int64(hgt)
	if s.MaxPixels > 0 && px > s.MaxPixels {
		return nil, badInput(ErrTooManyPixels, "jpeg: %dx%d is %d pixels, over image.max_pixels %d", int(w), int(hgt), px, s.MaxPixels)
	}
	hold(turboBytes(int64(w), int64(hgt), cs, data))
	width, height := int(w), int(hgt)
	dst.Width, dst.Height = width, height
	dst.Pix = growU8(dst.Pix, width*height*3)
	if cs == C.TJCS_CMYK || cs == C.TJCS_YCCK {
		// libjpeg-turbo converts YCCK to CMYK; PIL then inverts every
		// 4-component JPEG, Adobe marker or not ("CMYK;I", "assume adobe
		// conventions"), and converts with cmyk2rgb.
		t.cmyk = growU8(t.cmyk, width*height*4)
		if err := t.decompress(h, data, t.cmyk, w, w*4, hgt, C.TJPF_CMYK); err != nil {
			return nil, err
		}
		for i := 0; i < width*height; i++ {
			p := t.cmyk[i*4 : i*4+4]
			dst.Pix[i*3], dst.Pix[i*3+1], dst.Pix[i*3+2] = cmykToRGB(255-p[0], 255-p[1], 255-p[2], 255-p[3])
		}
		return dst, nil
	}
	if err := t.decompress(h, data, dst.Pix, w, w*3, hgt, C.TJPF_RGB); err != nil {
		return nil, err
	}
	return dst, nil
}

// libjpegWarnings are the beginnings of libjpeg-turbo's warning messages
// (jerror.h, JWRN_*). After a warning libjpeg goes on and writes every row,
// and PIL accepts the image; after an error it stops part way.
var libjpegWarnings = []string{
	"Corrupt JPEG data",
	"Premature end of JPEG file",
	"Warning: unknown JFIF revision",
	"Inconsistent progression sequence",
	"Invalid SOS parameters for sequential JPEG",
	"Unknown Adobe color transform code",
	"Application transferred too many scanlines",
}

// tjFailure classifies a failed tjDecompress2 from its message: nil when
// only warnings were emitted, a bad-input error otherwise. tjGetErrorCode
// cannot be used: once a warning has been emitted, TurboJPEG 2.1 reports a
// later fatal error as a warning too. A fatal error always leaves its own
// message (fresh); a warning may leave none.
func tjFailure(msg string, fresh bool) error {
	if !fresh {
		return nil
	}
	for _, w := range libjpegWarnings {
		if strings.HasPrefix(msg, w) {
			return nil
		}
	}
	return badInput(nil, "jpeg: cannot decode: %s", msg)
}
