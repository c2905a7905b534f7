//go:build resilience

package resilience

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/preprocess"
)

// corpus is the image package's committed test corpus, read in place.
const corpus = "../../preprocess/image/testdata/corpus"

// outcome is what a hostile item may become.
type outcome struct {
	ok     bool     // a tensor is acceptable
	reason []string // dead-letter reasons that are acceptable
}

var (
	mustProcess = outcome{ok: true}
	anyReason   = []string{preprocess.ReasonEmpty, preprocess.ReasonTooLarge, preprocess.ReasonTooManyPixels,
		preprocess.ReasonUnsupported, preprocess.ReasonCorrupt, preprocess.ReasonInvalidText, preprocess.ReasonOther}
)

func deadAs(reasons ...string) outcome { return outcome{reason: reasons} }

// eitherWay accepts a tensor or a dead letter with any bad-input reason.
var eitherWay = outcome{ok: true, reason: anyReason}

// hostileCase is one named kind of hostile input.
type hostileCase struct {
	name    string
	subject string // raw.image.<x> or raw.text.<x>
	data    []byte
	hdr     nats.Header
	want    outcome
	copies  int // published this many times (default 1)
	// refused: the broker itself refuses the item (the publish fails), so
	// it never reaches stoker.
	refused bool
}

func readCorpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatalf("image corpus: %v", err)
	}
	return b
}

// pngChunkFile is a PNG signature and IHDR claiming w×h 8-bit RGB, with
// optional extra bytes after it.
func pngChunkFile(w, h uint32, rest []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk := append([]byte("IHDR"), ihdr...)
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	b.Write(rest)
	return b.Bytes()
}

// jpegBomb is a JPEG whose frame header claims w×h pixels and which then
// ends.
func jpegBomb(w, h uint16) []byte {
	b := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08}
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01)
	return append(b, 0xFF, 0xD9)
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hostileCases(t testing.TB) []hostileCase {
	jpg := readCorpus(t, "coffee_420.jpg")
	pngFile := readCorpus(t, "coffee_257x225.png")
	badCRC := slices.Clone(pngFile)
	badCRC[29] ^= 0xFF // the IHDR chunk's CRC
	corruptScan := slices.Clone(jpg)
	for i := len(corruptScan) / 3; i < len(corruptScan)-2; i += 7 {
		corruptScan[i] = 0xFF // markers sprayed over the entropy-coded data
	}
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.IntN(256))
	}
	wide := image.NewGray(image.Rect(0, 0, 20000, 1))
	tall := image.NewGray(image.Rect(0, 0, 1, 20000))
	tiny := image.NewRGBA(image.Rect(0, 0, 1, 1))
	tiny.Set(0, 0, color.RGBA{200, 10, 10, 255})
	pngHdr := nats.Header{"Content-Type": []string{"image/jpeg"}}
	textHdr := nats.Header{"Content-Type": []string{"image/png"}, "Content-Length": []string{"999999"}}
	words := strings.Repeat("hostile words again ", 64<<10/20)

	return []hostileCase{
		// Images.
		{name: "jpeg truncated", subject: "raw.image.h", data: jpg[:len(jpg)/2], want: deadAs(preprocess.ReasonCorrupt)},
		{name: "jpeg header only", subject: "raw.image.h", data: jpg[:600], want: deadAs(preprocess.ReasonCorrupt)},
		{name: "jpeg soi marker alone", subject: "raw.image.h", data: []byte{0xFF, 0xD8}, want: deadAs(preprocess.ReasonCorrupt, preprocess.ReasonUnsupported)},
		{name: "jpeg corrupt scan", subject: "raw.image.h", data: corruptScan, want: eitherWay},
		{name: "jpeg trailing garbage", subject: "raw.image.h", data: append(slices.Clone(jpg), random...), want: mustProcess},
		{name: "png truncated", subject: "raw.image.h", data: pngFile[:len(pngFile)/2], want: deadAs(preprocess.ReasonCorrupt)},
		{name: "png bad crc", subject: "raw.image.h", data: badCRC, want: deadAs(preprocess.ReasonCorrupt)},
		{name: "png signature only", subject: "raw.image.h", data: []byte("\x89PNG\r\n\x1a\n"), want: deadAs(preprocess.ReasonCorrupt, preprocess.ReasonUnsupported)},
		{name: "zero bytes", subject: "raw.image.h", data: nil, want: deadAs(preprocess.ReasonEmpty)},
		{name: "png bomb 100000x100000", subject: "raw.image.h", data: pngChunkFile(100000, 100000, nil), want: deadAs(preprocess.ReasonTooManyPixels)},
		// The frame header claims 4.3 gigapixels and no scan data follows:
		// either finding is a correct refusal, as long as nothing of that
		// size is allocated (the worker's RSS is reported below).
		{name: "jpeg bomb 65500x65500", subject: "raw.image.h", data: jpegBomb(65500, 65500), want: deadAs(preprocess.ReasonTooManyPixels, preprocess.ReasonCorrupt)},
		{name: "png 16-bit rgb", subject: "raw.image.h", data: readCorpus(t, "coffee_rgb16.png"), want: mustProcess},
		{name: "png 16-bit gray", subject: "raw.image.h", data: readCorpus(t, "moon_gray16.png"), want: mustProcess},
		{name: "png 16-bit rgba", subject: "raw.image.h", data: readCorpus(t, "chelsea_rgba16.png"), want: mustProcess},
		{name: "jpeg cmyk", subject: "raw.image.h", data: readCorpus(t, "coffee_cmyk.jpg"), want: mustProcess},
		{name: "png palette", subject: "raw.image.h", data: readCorpus(t, "coffee_palette.png"), want: mustProcess},
		{name: "gif", subject: "raw.image.h", data: readCorpus(t, "chelsea.gif"), want: mustProcess},
		{name: "webp lossy", subject: "raw.image.h", data: readCorpus(t, "coffee_lossy.webp"), want: mustProcess},
		{name: "image over max_bytes", subject: "raw.image.h", data: append(slices.Clone(jpg), make([]byte, 2<<20)...), want: deadAs(preprocess.ReasonTooLarge)},
		{name: "svg as image", subject: "raw.image.h", data: []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`), want: deadAs(preprocess.ReasonUnsupported)},
		{name: "pdf as image", subject: "raw.image.h", data: []byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"), want: deadAs(preprocess.ReasonUnsupported)},
		{name: "tiff as image", subject: "raw.image.h", data: []byte("II*\x00\x08\x00\x00\x00\x00\x00"), want: deadAs(preprocess.ReasonUnsupported)},
		{name: "random bytes as image", subject: "raw.image.h", data: random, want: deadAs(preprocess.ReasonUnsupported, preprocess.ReasonCorrupt)},
		{name: "1x1 pixel", subject: "raw.image.h", data: encodePNG(t, tiny), want: mustProcess},
		{name: "20000x1 sliver", subject: "raw.image.h", data: encodePNG(t, wide), want: eitherWay},
		{name: "1x20000 sliver", subject: "raw.image.h", data: encodePNG(t, tall), want: eitherWay},
		{name: "png with a jpeg content header", subject: "raw.image.h", data: pngFile, hdr: pngHdr, want: mustProcess},

		// Texts.
		{name: "invalid utf-8", subject: "raw.text.h", data: []byte("caf\xe9 au lait"), want: deadAs(preprocess.ReasonInvalidText)},
		{name: "overlong utf-8", subject: "raw.text.h", data: []byte("slash \xc0\xaf here"), want: deadAs(preprocess.ReasonInvalidText)},
		{name: "utf-8 surrogate", subject: "raw.text.h", data: []byte("half \xed\xa0\x80 pair"), want: deadAs(preprocess.ReasonInvalidText)},
		// JetStream's file store refuses records over 32 MiB, whatever
		// max_payload says: a 100 MB text never reaches stoker. The largest
		// it stores is over the text pipeline's limit (an item over the
		// worker's fetch buffer is TestItemOverFetchBufferDoesNotStallThePipeline).
		{name: "100 MB text", subject: "raw.text.h", data: bytes.Repeat([]byte("big text "), 100<<20/9), refused: true},
		{name: "30 MB text", subject: "raw.text.h", data: bytes.Repeat([]byte("big text "), 30<<20/9), want: deadAs(preprocess.ReasonTooLarge)},
		{name: "64 KB line", subject: "raw.text.h", data: []byte(words), want: mustProcess},
		{name: "64 KB word", subject: "raw.text.h", data: bytes.Repeat([]byte("x"), 64<<10), want: mustProcess},
		{name: "nul and control bytes", subject: "raw.text.h", data: []byte("a\x00b\x01c\x7f\x1b[31mred\x1b[0m"), want: mustProcess},
		{name: "empty text", subject: "raw.text.h", data: nil, want: deadAs(preprocess.ReasonEmpty)},
		{name: "whitespace only", subject: "raw.text.h", data: []byte(" \t\r\n\u00a0\u2003 "), want: mustProcess},
		{name: "bom emoji rtl combining", subject: "raw.text.h", data: []byte("\ufeff👩‍👩‍👧 مرحبا e\u0301\u0327 \u202etxet\u202c 中文"), want: mustProcess},
		{name: "text with an image content header", subject: "raw.text.h", data: []byte("just words"), hdr: textHdr, want: mustProcess},
		{name: "jpeg sent as text", subject: "raw.text.h", data: jpg[:2048], want: deadAs(preprocess.ReasonInvalidText)},
		{name: "thousands of tiny items in one second", subject: "raw.text.h", data: []byte("a"), want: mustProcess, copies: 3000},
	}
}

// Scenario 9: one worker running both pipelines gets every kind of hostile
// input in one run. Each item is processed or dead-lettered with a reason,
// good items published between them all arrive, and the worker is still
// running at the end.
func TestHostileInputs(t *testing.T) {
	b := startBroker(t, func(o *server.Options) {
		o.MaxPayload = 120 << 20 // so that a 100 MB item can be published at all
		o.MaxPending = 256 << 20
	})
	c := client(t, b.url())
	limits := map[string]any{"max_bytes": "2MiB", "max_pixels": 50_000_000}
	cfg := writeConfig(t, b.url(), nil,
		imagePipeline("limits", limits, "image", map[string]any{"resize": 64, "crop": 56}),
		textPipeline())
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	cases := hostileCases(t)
	good := readCorpus(t, "chelsea_64x43.jpg")
	type sent struct {
		c   hostileCase
		ids []string
	}
	var all []sent
	var goods, goodTexts []item
	start := time.Now()
	for k, hc := range cases {
		s := sent{c: hc}
		if hc.refused {
			if _, err := c.Publish(context.Background(), hc.subject, hc.data, nil); err == nil {
				t.Errorf("%s: the broker accepted it; the test expects JetStream to refuse it", hc.name)
			} else {
				t.Logf("%s: refused by the broker: %v", hc.name, err)
			}
			continue
		}
		var batch []item
		n := max(hc.copies, 1)
		for i := range n {
			id := fmt.Sprintf("%02d-%s", k, strings.ReplaceAll(hc.name, " ", "-"))
			if n > 1 {
				id += fmt.Sprintf("-%04d", i)
			}
			s.ids = append(s.ids, id)
			batch = append(batch, item{subject: hc.subject, id: id, data: hc.data, hdr: hc.hdr})
		}
		// A good item of each pipeline after every hostile one.
		gi := item{subject: "raw.image.good", id: fmt.Sprintf("good-image-%02d", k), data: good}
		gt := item{subject: "raw.text.good", id: fmt.Sprintf("good-text-%02d", k), data: []byte("a perfectly ordinary sentence")}
		goods = append(goods, gi)
		goodTexts = append(goodTexts, gt)
		publishAll(t, c, append(batch, gi, gt))
		all = append(all, s)
	}
	if d := time.Since(start); d > time.Minute {
		t.Logf("publishing took %s", d)
	}

	ti, tt := newTally(t, c, "image"), newTally(t, c, "text")
	var imageIDs, textIDs []string
	for _, s := range all {
		if strings.HasPrefix(s.c.subject, "raw.image.") {
			imageIDs = append(imageIDs, s.ids...)
		} else {
			textIDs = append(textIDs, s.ids...)
		}
	}
	ti.waitAll(2*time.Minute, append(imageIDs, ids(goods)...))
	tt.waitAll(2*time.Minute, append(textIDs, ids(goodTexts)...))

	if w.hasExited() {
		t.Fatalf("the worker exited: %v", w.waitErr)
	}
	if g := ti.count(ids(goods)); g.Arrived != len(goods) || g.Duplicates != 0 {
		t.Errorf("good images between the hostile ones: %v", g)
	}
	if g := tt.count(ids(goodTexts)); g.Arrived != len(goodTexts) || g.Duplicates != 0 {
		t.Errorf("good texts between the hostile ones: %v", g)
	}
	processed, dead, generic := 0, 0, 0
	for _, s := range all {
		ty := tt
		if strings.HasPrefix(s.c.subject, "raw.image.") {
			ty = ti
		}
		t.Run(s.c.name, func(t *testing.T) {
			for _, id := range s.ids {
				rows, deads := ty.rows[id], ty.dead[id]
				switch {
				case rows+deads != 1:
					t.Errorf("%s: %d tensors and %d dead letters, want exactly one of them", id, rows, deads)
				case rows == 1:
					processed++
					if !s.c.want.ok {
						t.Errorf("%s: processed, want a dead letter with reason %v", id, s.c.want.reason)
					}
				default:
					dead++
					h := ty.deadHdr[id]
					reason, msg := h.Get("Stoker-Reason"), h.Get("Stoker-Error")
					if reason == preprocess.ReasonOther && len(s.c.want.reason) > 0 {
						generic++ // a reason, though not the specific one
					} else if !slices.Contains(s.c.want.reason, reason) {
						t.Errorf("%s: dead-lettered with reason %q (%s), want %v", id, reason, msg, wantText(s.c.want))
					}
					if !strings.Contains(msg, id) {
						t.Errorf("%s: dead letter error %q does not name the item", id, msg)
					}
				}
			}
		})
	}
	peak, _, err := w.memory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scenario 9 (hostile): %d kinds, %d hostile items: %d processed, %d dead-lettered; %d good images and %d good texts between them all arrived; worker alive, peak RSS %.0f MiB",
		len(cases), len(imageIDs)+len(textIDs), processed, dead, len(goods), len(goodTexts), float64(peak)/(1<<20))
	if generic > 0 {
		t.Logf("%d of %d dead letters carry the generic reason %q rather than a specific code", generic, dead, preprocess.ReasonOther)
	}
	for _, s := range all {
		if len(s.ids) != 1 {
			continue
		}
		ty := tt
		if strings.HasPrefix(s.c.subject, "raw.image.") {
			ty = ti
		}
		if h, ok := ty.deadHdr[s.ids[0]]; ok {
			t.Logf("  %-40s dead letter %-18s %.120s", s.c.name, h.Get("Stoker-Reason"), h.Get("Stoker-Error"))
		} else {
			t.Logf("  %-40s processed", s.c.name)
		}
	}
}

func wantText(o outcome) string {
	if o.ok {
		return fmt.Sprintf("a tensor or one of %v", o.reason)
	}
	return fmt.Sprint(o.reason)
}
