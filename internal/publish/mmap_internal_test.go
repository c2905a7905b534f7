package publish

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestMappedReadersMatchStreamingAndUnmap reads the same tar shard and
// TFRecord file mapped and streamed: the records must be equal, the mapped
// ones must alias the mapping, and the mapping must be released exactly
// when the reader is closed and every record released.
func TestMappedReadersMatchStreamingAndUnmap(t *testing.T) {
	dir := t.TempDir()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, m := range []struct{ name, data string }{
		{"a.jpg", "AAAA"}, {"a.cls", "1"}, {"b.cls", "2"}, {"b.jpg", "BBBBBB"}, {"c.txt", "no jpg"}, {"d.jpg", ""},
	} {
		tw.WriteHeader(&tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write([]byte(m.data))
	}
	tw.Close()
	var fb bytes.Buffer
	w := NewTFRecordWriter(&fb)
	for _, p := range []string{"x", "yy", "zzz"} {
		w.Write(EncodeExample(map[string]Feature{"f": {Bytes: [][]byte{[]byte(p)}}}))
	}
	corrupt := bytes.Clone(fb.Bytes())
	corrupt[12+3] ^= 0xff // first record's data
	cases := []struct {
		name string
		file []byte
		in   Input
	}{
		{"tar", tb.Bytes(), Input{ID: "s.tar", Format: FormatTar}},
		{"tfrecord", fb.Bytes(), Input{ID: "t.tfrecord", Format: FormatTFRecord}},
		{"tfrecord corrupt", corrupt, Input{ID: "t.tfrecord", Format: FormatTFRecord}},
		{"tfrecord truncated", fb.Bytes()[:fb.Len()-3], Input{ID: "t.tfrecord", Format: FormatTFRecord}},
	}
	o := ReadOptions{Tar: TarOptions{Ext: "jpg"}, TFRecord: TFRecordOptions{Feature: "f"}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Path = filepath.Join(dir, c.in.ID)
			c.in.Size = int64(len(c.file))
			if err := os.WriteFile(c.in.Path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			read := func(noMmap bool) ([]Record, []string, ReadCloser) {
				o := o
				o.NoMmap = noMmap
				var n atomic.Int64
				r, err := Open(c.in, o, &n)
				if err != nil {
					t.Fatal(err)
				}
				var recs []Record
				var errs []string
				for {
					rec, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						if !recoverable(err) {
							t.Fatal(err)
						}
						errs = append(errs, err.Error())
						continue
					}
					recs = append(recs, rec)
				}
				if n.Load() != c.in.Size {
					t.Errorf("noMmap=%v: %d input bytes counted, want %d", noMmap, n.Load(), c.in.Size)
				}
				return recs, errs, r
			}
			streamed, streamedErrs, sr := read(true)
			sr.Close()
			mapped, mappedErrs, mr := read(false)
			if len(mapped) == 0 {
				t.Fatal("no records")
			}
			if len(mapped) != len(streamed) || !equalStrings(mappedErrs, streamedErrs) {
				t.Fatalf("mapped %d records, errors %q; streamed %d, errors %q", len(mapped), mappedErrs, len(streamed), streamedErrs)
			}
			var m *mapping
			for i := range mapped {
				if mapped[i].ID != streamed[i].ID || !bytes.Equal(mapped[i].Data, streamed[i].Data) {
					t.Fatalf("record %d: mapped %q=%q, streamed %q=%q", i, mapped[i].ID, mapped[i].Data, streamed[i].ID, streamed[i].Data)
				}
				if streamed[i].rel != nil {
					t.Fatalf("streamed record %d holds a mapping", i)
				}
				if mapped[i].rel == nil {
					t.Fatalf("mapped record %d holds no mapping", i)
				}
				m = mapped[i].rel.m
			}
			if got := m.refs.Load(); got != int64(len(mapped))+1 {
				t.Fatalf("mapping refs = %d, want %d (records + reader)", got, len(mapped)+1)
			}
			unmapped := false
			inner := m.unmap
			m.unmap = func() error { unmapped = true; return inner() }
			mr.Close()
			for i, rec := range mapped {
				if unmapped {
					t.Fatalf("unmapped with %d records unreleased", len(mapped)-i)
				}
				rec.Release()
				rec.Release() // a second release must not count
			}
			if !unmapped || m.refs.Load() != 0 {
				t.Fatalf("after all releases: unmapped %v, refs %d", unmapped, m.refs.Load())
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
