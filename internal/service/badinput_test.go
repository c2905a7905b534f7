package service_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/preprocess"
)

// pngHeader is a valid PNG signature and IHDR chunk claiming w×h RGB pixels,
// with no image data after it: a decoder that trusts it would allocate w*h*3 bytes.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestBadInputsAreDeadLetteredAndTheBatchGoesOn(t *testing.T) {
	r := startService(t, func(c *config.Config) {
		for i := range c.Pipelines {
			p := &c.Pipelines[i]
			p.Batch.MaxItems = 64 // every item below lands in one or two batches
			if p.Image != nil {
				p.Limits.MaxBytes = 300_000
				p.Image.MaxBytes = 300_000
				p.Limits.MaxPixels = 50_000_000
				p.Image.MaxPixels = 50_000_000
			}
		}
	})
	good, err := os.ReadFile(filepath.Join(samples, "images", "chelsea.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, reason string
		data       []byte
	}{
		{"undecodable.jpg", preprocess.ReasonCorrupt, append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{0x42}, 500)...)},
		{"truncated.jpg", preprocess.ReasonCorrupt, good[:len(good)/2]},
		{"unsupported.svg", preprocess.ReasonUnsupported, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`)},
		{"document.pdf", preprocess.ReasonUnsupported, []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n")},
		{"empty.jpg", preprocess.ReasonEmpty, nil},
		{"huge-file.jpg", preprocess.ReasonTooLarge, append(append([]byte{}, good...), make([]byte, 300_000)...)},
		{"bomb.png", preprocess.ReasonTooManyPixels, pngHeader(100_000, 100_000)},
	}
	for i, c := range cases {
		r.publish(t, "raw.image.hostile", c.id, c.data)
		r.publish(t, "raw.image.hostile", fmt.Sprintf("good-%d.jpg", i), good)
	}
	r.publish(t, "raw.text.hostile", "latin1", []byte("caf\xe9"))
	r.publish(t, "raw.text.hostile", "fine", []byte("a fine sentence"))

	rows, dead := r.collect(t, "image", 2*len(cases))
	for i, c := range cases {
		h, ok := dead[c.id]
		if !ok {
			t.Errorf("%s: not dead-lettered (published: %v)", c.id, rows[c.id].tensors != nil)
			continue
		}
		if got := h.Get("Stoker-Reason"); got != c.reason {
			t.Errorf("%s: reason %q, want %q (error %q)", c.id, got, c.reason, h.Get("Stoker-Error"))
		}
		if msg := h.Get("Stoker-Error"); !strings.Contains(msg, c.id) {
			t.Errorf("%s: error %q does not name the item", c.id, msg)
		}
		if id := fmt.Sprintf("good-%d.jpg", i); rows[id].tensors == nil {
			t.Errorf("%s: the good item next to %s was not published", id, c.id)
		}
	}
	trows, tdead := r.collect(t, "text", 2)
	if h, ok := tdead["latin1"]; !ok || h.Get("Stoker-Reason") != preprocess.ReasonInvalidText {
		t.Errorf("invalid UTF-8: dead letter %v", h)
	}
	if trows["fine"].tensors == nil {
		t.Errorf("the valid text next to the invalid one was not published")
	}
	if err := r.svc.Ready(); err != nil {
		t.Errorf("service not ready after bad input: %v", err)
	}
}
