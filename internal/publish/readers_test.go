package publish_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stoker-ml/stoker/internal/publish"
)

// readAll reads r to the end, collecting records and the per-record errors
// that let reading go on; any other error fails the test.
func readAll(t *testing.T, r publish.Reader) ([]publish.Record, []error) {
	t.Helper()
	var recs []publish.Record
	var errs []error
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader never returned io.EOF")
		}
		rec, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return recs, errs
		case errors.Is(err, publish.ErrCorrupt), errors.Is(err, publish.ErrNoPayload), errors.Is(err, publish.ErrTooLarge):
			errs = append(errs, err)
		case err != nil:
			t.Fatalf("record %d: %v", i, err)
		default:
			recs = append(recs, rec)
		}
	}
}

// idData renders records as "id=data" for comparison.
func idData(recs []publish.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID + "=" + string(r.Data)
	}
	return out
}

func TestLinesReader(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"plain", "a\nb\n", []string{"f:0=a", "f:1=b"}},
		{"no final newline", "a\nb", []string{"f:0=a", "f:1=b"}},
		{"crlf", "a\r\nb\r\n", []string{"f:0=a", "f:1=b"}},
		{"empty lines skipped but counted", "\na\n\n\nb\n", []string{"f:1=a", "f:4=b"}},
		{"empty input", "", []string{}},
		{"long line", strings.Repeat("x", 200_000) + "\ny", []string{"f:0=" + strings.Repeat("x", 200_000), "f:1=y"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// OneByteReader proves lines split across reads come out whole.
			recs, errs := readAll(t, publish.NewLinesReader(iotest.OneByteReader(strings.NewReader(c.in)), "f"))
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if got := idData(recs); !reflect.DeepEqual(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestJSONLReader(t *testing.T) {
	in := `{"text":"hello","id":"a1","lang":"en","n":3}
{"text":"wo\nrld","id":7}

not json
{"other":"x"}
{"text":{"nested":1}}
{"text":"last","id":"z","lang":null}
`
	cases := []struct {
		name     string
		o        publish.JSONLOptions
		want     []string
		meta     []map[string]string
		problems []error
	}{
		{
			name:     "line ids",
			o:        publish.JSONLOptions{Field: "text"},
			want:     []string{"d.jsonl:0=hello", "d.jsonl:1=wo\nrld", "d.jsonl:6=last"},
			meta:     []map[string]string{nil, nil, nil},
			problems: []error{publish.ErrCorrupt, publish.ErrNoPayload, publish.ErrNoPayload},
		},
		{
			name:     "id field and meta",
			o:        publish.JSONLOptions{Field: "text", IDField: "id", MetaFields: []string{"lang", "n"}},
			want:     []string{"a1=hello", "7=wo\nrld", "z=last"},
			meta:     []map[string]string{{"lang": "en", "n": "3"}, nil, nil},
			problems: []error{publish.ErrCorrupt, publish.ErrNoPayload, publish.ErrNoPayload},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := publish.NewJSONLReader(strings.NewReader(in), "d.jsonl", c.o)
			if err != nil {
				t.Fatal(err)
			}
			recs, errs := readAll(t, r)
			if got := idData(recs); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			for i, rec := range recs {
				if !reflect.DeepEqual(rec.Meta, c.meta[i]) {
					t.Errorf("record %s meta %v, want %v", rec.ID, rec.Meta, c.meta[i])
				}
			}
			if len(errs) != len(c.problems) {
				t.Fatalf("errors %v, want %d", errs, len(c.problems))
			}
			for i, want := range c.problems {
				if !errors.Is(errs[i], want) {
					t.Errorf("error %d = %v, want %v", i, errs[i], want)
				}
			}
			if !strings.Contains(errs[0].Error(), "d.jsonl:3") {
				t.Errorf("bad JSON error %q does not name line d.jsonl:3", errs[0])
			}
		})
	}
}

func TestFileReader(t *testing.T) {
	r := publish.NewFileReader(strings.NewReader("payload"), "a/b.jpg", 7)
	recs, _ := readAll(t, r)
	if got := idData(recs); !reflect.DeepEqual(got, []string{"a/b.jpg=payload"}) {
		t.Fatalf("got %q", got)
	}
}

func TestParseFormatAndFormatOf(t *testing.T) {
	cases := []struct {
		name string
		want publish.Format
	}{
		{"shard-000.tar", publish.FormatTar},
		{"shard.TAR.GZ", publish.FormatTar},
		{"x.tgz", publish.FormatTar},
		{"train.parquet", publish.FormatParquet},
		{"t.tfrecord", publish.FormatTFRecord},
		{"t.tfrecords", publish.FormatTFRecord},
		{"d.jsonl", publish.FormatFiles},
		{"img.jpg", publish.FormatFiles},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := publish.FormatOf(c.name); got != c.want {
				t.Fatalf("FormatOf(%q) = %q, want %q", c.name, got, c.want)
			}
		})
	}
	if _, err := publish.ParseFormat("csv"); !errors.Is(err, publish.ErrUnknownFormat) {
		t.Fatalf("ParseFormat(csv) = %v, want ErrUnknownFormat", err)
	}
	if f, err := publish.ParseFormat("tfrecord"); err != nil || f != publish.FormatTFRecord {
		t.Fatalf("ParseFormat(tfrecord) = %q, %v", f, err)
	}
}
