package resilience

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/queue"
)

// Fuzz targets for what stoker does with a message's envelope before any
// preprocessing: the header block as it arrives on the wire, the item id
// taken from it, and the subject rules that keep pipelines apart. Image
// decoding, both tokenizers and safetensors have their own targets in
// preprocess/image, preprocess/text and internal/safetensors.
//
// Run one: go test -run '^$' -fuzz '^FuzzItemHeaders$' -fuzztime 60s ./internal/resilience

// headerBlock frames header lines as NATS sends them.
func headerBlock(lines ...string) []byte {
	return []byte("NATS/1.0\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n")
}

// FuzzItemHeaders decodes an arbitrary header block as the client library
// does for every delivered message, then takes the item's id from it: the id
// is never empty, is the Nats-Msg-Id when one is set, and is
// "<stream>:<sequence>" otherwise.
func FuzzItemHeaders(f *testing.F) {
	f.Add(headerBlock("Nats-Msg-Id: cat.jpg"), "RAW_IMAGE", uint64(7))
	f.Add(headerBlock("Nats-Msg-Id:", "Content-Type: image/png"), "RAW_TEXT", uint64(1))
	f.Add(headerBlock("nats-msg-id: lower", "Nats-Msg-Id: a", "Nats-Msg-Id: b"), "S", uint64(0))
	f.Add(headerBlock("Stoker-Output: evil.out", "Nats-Expected-Stream: X"), "RAW", uint64(1<<63))
	f.Add([]byte("NATS/1.0 503\r\n\r\n"), "RAW", uint64(3))
	f.Add([]byte("NATS/1.0\r\nNats-Msg-Id:  spaced id \r\n\r\n"), "RAW", uint64(3))
	f.Add([]byte("garbage"), "RAW", uint64(3))
	f.Fuzz(func(t *testing.T, block []byte, stream string, seq uint64) {
		hdr, err := nats.DecodeHeadersMsg(block)
		if err != nil {
			return // the client drops such a message; stoker never sees it
		}
		m := &queue.Message{Header: hdr, Stream: stream, Sequence: seq}
		id := m.ID()
		if id != m.ID() {
			t.Fatalf("ID is not stable: %q then %q", id, m.ID())
		}
		if msgID := hdr.Get(nats.MsgIdHdr); msgID != "" {
			if id != msgID {
				t.Fatalf("ID %q, want the Nats-Msg-Id %q", id, msgID)
			}
			return
		}
		want := stream + ":" + strconv.FormatUint(seq, 10)
		if id != want {
			t.Fatalf("ID %q without a Nats-Msg-Id, want %q", id, want)
		}
		if !strings.HasSuffix(id, ":"+strconv.FormatUint(seq, 10)) {
			t.Fatalf("ID %q does not end with the sequence", id)
		}
	})
}

// FuzzSubjectRules checks the subject rules configuration validation relies
// on to keep pipelines apart: a valid pattern covers itself and overlaps
// itself; covering implies overlapping; overlap is symmetric; a valid
// literal is also a valid pattern; and the functions never panic.
func FuzzSubjectRules(f *testing.F) {
	for _, s := range [][2]string{
		{"raw.image.>", "raw.image.cats"},
		{"raw.>", "raw.image.>"},
		{"raw.*.x", "raw.image.*"},
		{"tensors.image", "raw.image.>"},
		{">", "*"},
		{"a..b", "a.b"},
		{"a.b*", "a.b"},
		{"a.>.b", "a.c.b"},
		{"", " "},
		{"raw.text.tensors.evil", "tensors.>"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, vb := queue.ValidSubject(a, true) == nil, queue.ValidSubject(b, true) == nil
		if queue.ValidSubject(a, false) == nil && !va {
			t.Fatalf("%q is a valid literal but not a valid pattern", a)
		}
		covers, overlap, overlapBA := queue.SubjectCovers(a, b), queue.SubjectsOverlap(a, b), queue.SubjectsOverlap(b, a)
		if !va || !vb {
			return
		}
		if !queue.SubjectCovers(a, a) || !queue.SubjectsOverlap(a, a) {
			t.Fatalf("%q does not cover or overlap itself", a)
		}
		if covers && !overlap {
			t.Fatalf("%q covers %q but they do not overlap", a, b)
		}
		if overlap != overlapBA {
			t.Fatalf("overlap of %q and %q is not symmetric: %v vs %v", a, b, overlap, overlapBA)
		}
		if queue.ValidSubject(b, false) == nil && covers != matchesLiteral(a, b) {
			t.Fatalf("SubjectCovers(%q, literal %q) = %v, but matching says %v", a, b, covers, !covers)
		}
	})
}

// matchesLiteral is NATS subject matching of a literal subject against a
// pattern, written out token by token as the reference for the fuzzer.
func matchesLiteral(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}
