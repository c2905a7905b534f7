package publish_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/stoker-ml/stoker/internal/publish"
)

// payload returns n deterministic pseudo-random bytes for seed.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// member is one file of a tar archive.
type member struct {
	name string
	data []byte
}

// writeTar writes members, in order, as a tar archive with archive/tar.
func writeTar(t testing.TB, w io.Writer, members []member) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTarReaderWebDataset(t *testing.T) {
	img0, img1, img3 := payload(0, 3000), payload(1, 100), payload(3, 5)
	members := []member{
		{"train/000000.jpg", img0},
		{"train/000000.cls", []byte("7\n")},
		{"train/000000.json", []byte("{\n  \"caption\": \"a cat\"\n}\n")},
		{"train/000000.big", payload(9, 2000)}, // over MaxMetaBytes: left out
		{"train/000001.cls", []byte("3")},
		{"train/000001.jpg", img1},
		{"train/000001.seg.png", []byte("png")},
		{"train/000002.cls", []byte("1")}, // no .jpg: skipped
		{"train/000003.jpg", img3},
		{"train/000003.txt", []byte("bad\x00binary")}, // control characters, not JSON: left out
	}
	var plain bytes.Buffer
	writeTar(t, &plain, members)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(plain.Bytes())
	zw.Close()

	want := []publish.Record{
		{ID: "shard-0.tar/train/000000", Data: img0, Meta: map[string]string{"cls": "7", "json": `{"caption":"a cat"}`}},
		{ID: "shard-0.tar/train/000001", Data: img1, Meta: map[string]string{"cls": "3", "seg.png": "png"}},
		{ID: "shard-0.tar/train/000003", Data: img3},
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"plain", plain.Bytes()},
		{"gzip", zipped.Bytes()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := publish.NewTarReader(bytes.NewReader(c.in), "shard-0.tar", publish.TarOptions{Ext: "jpg"})
			if err != nil {
				t.Fatal(err)
			}
			recs, errs := readAll(t, r)
			if !reflect.DeepEqual(recs, want) {
				t.Fatalf("records:\n%v\nwant\n%v", summarize(recs), summarize(want))
			}
			if len(errs) != 1 || !errors.Is(errs[0], publish.ErrNoPayload) || !strings.Contains(errs[0].Error(), "train/000002") {
				t.Fatalf("errors %v, want one ErrNoPayload naming train/000002", errs)
			}
		})
	}
}

func TestTarReaderTruncatedShardEndsWithError(t *testing.T) {
	var buf bytes.Buffer
	writeTar(t, &buf, []member{{"a.jpg", payload(1, 4000)}, {"b.jpg", payload(2, 4000)}})
	r, err := publish.NewTarReader(bytes.NewReader(buf.Bytes()[:5000]), "s.tar", publish.TarOptions{Ext: "jpg"})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := r.Next(); err != nil || rec.ID != "s.tar/a" {
		t.Fatalf("first sample = %q, %v", rec.ID, err)
	}
	_, err = r.Next()
	if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "s.tar") {
		t.Fatalf("truncated shard: err = %v, want an error naming the shard", err)
	}
}

func summarize(recs []publish.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %x… %d bytes %v\n", r.ID, r.Data[:min(4, len(r.Data))], len(r.Data), r.Meta)
	}
	return b.String()
}

// TestMaskedCRC32CFixedVector checks the checksum and framing against a
// record computed independently: CRC32C of 32 zero bytes is 0x8A9136AA
// (RFC 3720, B.4); the length checksum and the masks were computed by hand
// with a bitwise CRC32C checked against the RFC's three vectors.
func TestMaskedCRC32CFixedVector(t *testing.T) {
	const record = "2000000000000000" + "29eda950" + "0000000000000000000000000000000000000000000000000000000000000000" + "faffd70f"
	want, _ := hex.DecodeString(record)
	if got := publish.MaskedCRC32C(make([]byte, 32)); got != 0x0fd7fffa {
		t.Errorf("MaskedCRC32C(32 zeros) = %#x, want 0x0fd7fffa", got)
	}
	var buf bytes.Buffer
	if err := publish.NewTFRecordWriter(&buf).Write(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("record\n%x\nwant\n%x", buf.Bytes(), want)
	}
	data, index, offset, err := publish.NewTFRecordFramer(bytes.NewReader(want), "v", 0).Next()
	if err != nil || !bytes.Equal(data, make([]byte, 32)) || index != 0 || offset != 0 {
		t.Fatalf("framer: %x, %d, %d, %v", data, index, offset, err)
	}
}

func TestExampleRoundTrip(t *testing.T) {
	in := map[string]publish.Feature{
		"image/encoded": {Bytes: [][]byte{payload(5, 300)}},
		"image/class":   {Int64: []int64{42, -1}},
		"image/score":   {Float: []float32{0.5}},
		"image/id":      {Bytes: [][]byte{[]byte("img-0001")}},
		"empty":         {Bytes: [][]byte{}},
	}
	got, err := publish.ParseExample(publish.EncodeExample(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n%v\nwant\n%v", got, in)
	}
	only, err := publish.ParseExample(publish.EncodeExample(in), []string{"image/class"})
	if err != nil || len(only) != 1 || !reflect.DeepEqual(only["image/class"].Int64, []int64{42, -1}) {
		t.Fatalf("filtered parse = %v, %v", only, err)
	}
	if _, err := publish.ParseExample([]byte{0x0a, 0x05, 0x01}, nil); err == nil {
		t.Fatal("truncated Example parsed without error")
	}
}

// TestParseExampleUnpacked reads an Int64List whose values are not packed
// (allowed by the protobuf encoding), built by hand: Example{features{
// feature{key:"n" value{int64_list{value:5 value:6}}}}}.
func TestParseExampleUnpacked(t *testing.T) {
	list := []byte{0x08, 0x05, 0x08, 0x06}                 // value: 5, value: 6
	feat := append([]byte{0x1a, byte(len(list))}, list...) // int64_list (field 3)
	entry := append([]byte{0x0a, 0x01, 'n', 0x12, byte(len(feat))}, feat...)
	feats := append([]byte{0x0a, byte(len(entry))}, entry...)
	ex := append([]byte{0x0a, byte(len(feats))}, feats...)
	got, err := publish.ParseExample(ex, nil)
	if err != nil || !reflect.DeepEqual(got["n"].Int64, []int64{5, 6}) {
		t.Fatalf("ParseExample = %v, %v", got, err)
	}
}

// tfExamples writes n Examples (payload feature image/encoded, id feature
// image/id, int64 label) and returns the file bytes, each record's offset
// and the payloads.
func tfExamples(t testing.TB, n, size int) ([]byte, []int, [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w := publish.NewTFRecordWriter(&buf)
	var offsets []int
	var payloads [][]byte
	for i := range n {
		offsets = append(offsets, buf.Len())
		p := payload(uint64(100+i), size+i)
		payloads = append(payloads, p)
		ex := publish.EncodeExample(map[string]publish.Feature{
			"image/encoded": {Bytes: [][]byte{p}},
			"image/id":      {Bytes: [][]byte{[]byte("id-" + string(rune('a'+i)))}},
			"label":         {Int64: []int64{int64(i)}},
		})
		if err := w.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes(), offsets, payloads
}

func TestTFRecordReader(t *testing.T) {
	file, offsets, payloads := tfExamples(t, 5, 200)
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(file)) }
	cases := []struct {
		name    string
		in      []byte
		o       publish.TFRecordOptions
		wantIDs []string
		wantIdx []int // payload index of each record
		errs    []string
	}{
		{
			name:    "clean",
			in:      file,
			o:       publish.TFRecordOptions{Feature: "image/encoded", MetaFeatures: []string{"label"}},
			wantIDs: []string{"t.tfrecord:0", "t.tfrecord:1", "t.tfrecord:2", "t.tfrecord:3", "t.tfrecord:4"},
			wantIdx: []int{0, 1, 2, 3, 4},
		},
		{
			name:    "id feature",
			in:      file,
			o:       publish.TFRecordOptions{Feature: "image/encoded", IDFeature: "image/id"},
			wantIDs: []string{"id-a", "id-b", "id-c", "id-d", "id-e"},
			wantIdx: []int{0, 1, 2, 3, 4},
		},
		{
			name:    "data checksum mismatch skips one record",
			in:      corrupt(func(b []byte) []byte { b[offsets[2]+12+30] ^= 0xff; return b }),
			o:       publish.TFRecordOptions{Feature: "image/encoded"},
			wantIDs: []string{"t.tfrecord:0", "t.tfrecord:1", "t.tfrecord:3", "t.tfrecord:4"},
			wantIdx: []int{0, 1, 3, 4},
			errs:    []string{"record 2 at offset " + strconv.Itoa(offsets[2]) + ": corrupt record: data checksum mismatch"},
		},
		{
			name:    "length checksum mismatch resyncs at the next record",
			in:      corrupt(func(b []byte) []byte { b[offsets[1]] ^= 0x01; return b }),
			o:       publish.TFRecordOptions{Feature: "image/encoded"},
			wantIDs: []string{"t.tfrecord:0", "t.tfrecord:1", "t.tfrecord:2", "t.tfrecord:3"},
			wantIdx: []int{0, 2, 3, 4},
			errs:    []string{"offset " + strconv.Itoa(offsets[1]) + ": corrupt record: length checksum mismatch; skipped " + strconv.Itoa(offsets[2]-offsets[1]) + " bytes"},
		},
		{
			name:    "truncated last record",
			in:      file[:len(file)-10],
			o:       publish.TFRecordOptions{Feature: "image/encoded"},
			wantIDs: []string{"t.tfrecord:0", "t.tfrecord:1", "t.tfrecord:2", "t.tfrecord:3"},
			wantIdx: []int{0, 1, 2, 3},
			errs:    []string{"record 4 at offset " + strconv.Itoa(offsets[4]) + ": corrupt record: truncated"},
		},
		{
			name:    "missing feature",
			in:      file[:offsets[1]],
			o:       publish.TFRecordOptions{Feature: "image/other"},
			wantIDs: []string{},
			errs:    []string{"record 0 at offset 0: no payload: no bytes feature \"image/other\""},
		},
		{
			name:    "record over the size limit",
			in:      file[:offsets[1]],
			o:       publish.TFRecordOptions{Feature: "image/encoded", MaxRecordBytes: 100},
			wantIDs: []string{},
			errs:    []string{"record 0 at offset 0: record too large"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := publish.NewTFRecordReader(bytes.NewReader(c.in), "t.tfrecord", c.o)
			if err != nil {
				t.Fatal(err)
			}
			recs, errs := readAll(t, r)
			ids := []string{}
			for i, rec := range recs {
				ids = append(ids, rec.ID)
				if i < len(c.wantIdx) && !bytes.Equal(rec.Data, payloads[c.wantIdx[i]]) {
					t.Errorf("record %s: payload differs from written payload %d", rec.ID, c.wantIdx[i])
				}
			}
			if !reflect.DeepEqual(ids, c.wantIDs) {
				t.Fatalf("ids %q, want %q", ids, c.wantIDs)
			}
			if len(errs) != len(c.errs) {
				t.Fatalf("errors %v, want %q", errs, c.errs)
			}
			for i, want := range c.errs {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %q does not contain %q", errs[i], want)
				}
			}
			if c.o.MetaFeatures != nil && recs[3].Meta["label"] != "3" {
				t.Errorf("record 3 meta %v, want label=3", recs[3].Meta)
			}
		})
	}
}

// pqImage is a Hugging Face style image struct.
type pqImage struct {
	Bytes []byte `parquet:"bytes"`
	Path  string `parquet:"path"`
}

type pqRow struct {
	Key     string  `parquet:"key"`
	Image   []byte  `parquet:"image,optional"`
	Label   int64   `parquet:"label"`
	Score   float64 `parquet:"score"`
	Caption *string `parquet:"caption,optional"`
	Nested  pqImage `parquet:"nested"`
	Tags    []int32 `parquet:"tags,list"`
}

// writeParquet writes rows with parquet-go's writer, rowsPerGroup rows per
// row group.
func writeParquet(t testing.TB, path string, rows []pqRow, rowsPerGroup int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[pqRow](f, parquet.MaxRowsPerRowGroup(rowsPerGroup), parquet.PageBufferSize(4096))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func parquetRows(n int) []pqRow {
	rows := make([]pqRow, n)
	for i := range rows {
		caption := "caption " + strconv.Itoa(i)
		rows[i] = pqRow{
			Key:    "k" + strconv.Itoa(i),
			Image:  payload(uint64(i), 1000+i*37),
			Label:  int64(i % 3),
			Score:  float64(i) / 4,
			Nested: pqImage{Bytes: payload(uint64(1000+i), 50), Path: "p" + strconv.Itoa(i)},
			Tags:   []int32{1, 2},
		}
		if i%2 == 0 {
			rows[i].Caption = &caption
		}
	}
	if n > 4 {
		rows[4].Image = nil // null payload: skipped
	}
	return rows
}

func TestParquetReader(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "train.parquet")
	rows := parquetRows(11)
	writeParquet(t, file, rows, 3) // 4 row groups: 3+3+3+2
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()

	t.Run("payload, id and meta columns", func(t *testing.T) {
		r, err := publish.NewParquetReader(f, st.Size(), "train.parquet", publish.ParquetOptions{
			Column: "image", IDColumn: "key", MetaColumns: []string{"label", "score", "caption", "nested.path"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.NumRows() != 11 {
			t.Fatalf("NumRows = %d", r.NumRows())
		}
		recs, errs := readAll(t, r)
		if len(recs) != 10 {
			t.Fatalf("%d records, want 10", len(recs))
		}
		k := 0
		for i, row := range rows {
			if row.Image == nil {
				continue
			}
			rec := recs[k]
			k++
			if rec.ID != row.Key || !bytes.Equal(rec.Data, row.Image) {
				t.Fatalf("record %d: id %q (want %q), payload equal %v", i, rec.ID, row.Key, bytes.Equal(rec.Data, row.Image))
			}
			want := map[string]string{"label": strconv.Itoa(int(row.Label)), "score": []string{"0", "0.25", "0.5", "0.75", "1", "1.25", "1.5", "1.75", "2", "2.25", "2.5"}[i], "nested.path": row.Nested.Path}
			if row.Caption != nil {
				want["caption"] = *row.Caption
			}
			if !reflect.DeepEqual(rec.Meta, want) {
				t.Errorf("record %d meta %v, want %v", i, rec.Meta, want)
			}
		}
		if len(errs) != 1 || !errors.Is(errs[0], publish.ErrNoPayload) || !strings.Contains(errs[0].Error(), "train.parquet:4") {
			t.Fatalf("errors %v, want one ErrNoPayload for row 4", errs)
		}
	})
	t.Run("nested column, row ids", func(t *testing.T) {
		r, err := publish.NewParquetReader(f, st.Size(), "train.parquet", publish.ParquetOptions{Column: "nested.bytes"})
		if err != nil {
			t.Fatal(err)
		}
		recs, errs := readAll(t, r)
		if len(errs) != 0 || len(recs) != 11 {
			t.Fatalf("%d records, errors %v", len(recs), errs)
		}
		for i, rec := range recs {
			if rec.ID != "train.parquet:"+strconv.Itoa(i) || !bytes.Equal(rec.Data, rows[i].Nested.Bytes) {
				t.Fatalf("record %d: id %q, payload equal %v", i, rec.ID, bytes.Equal(rec.Data, rows[i].Nested.Bytes))
			}
		}
	})
	bad := []struct {
		name string
		o    publish.ParquetOptions
		want string
	}{
		{"unknown column", publish.ParquetOptions{Column: "nope"}, `no column "nope"`},
		{"numeric payload", publish.ParquetOptions{Column: "label"}, `payload column "label" holds`},
		{"repeated column", publish.ParquetOptions{Column: "image", MetaColumns: []string{"tags.list.element"}}, "is repeated"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := publish.NewParquetReader(f, st.Size(), "train.parquet", c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
