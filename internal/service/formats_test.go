package service_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/stoker-ml/stoker/internal/publish"
)

// TestEachPublishFormatRoundTripsThroughWorker writes each dataset format
// with a real writer, publishes it with stoker publish's code, and checks
// that a running worker turns every record into a tensor under the id the
// publisher gave it.
func TestEachPublishFormatRoundTripsThroughWorker(t *testing.T) {
	r := startService(t, nil)
	dir := t.TempDir()
	imgs := map[string][]byte{}
	for _, n := range []string{"astronaut.jpg", "chelsea.jpg", "coffee.jpg"} {
		b, err := os.ReadFile(filepath.Join(samples, "images", n))
		if err != nil {
			t.Fatal(err)
		}
		imgs[strings.TrimSuffix(n, ".jpg")] = b
	}
	keys := []string{"astronaut", "chelsea", "coffee"}
	texts := []string{"the first document", "ein zweites Dokument", "третий документ"}

	// WebDataset shard: <key>.jpg with a <key>.cls side member.
	shard := filepath.Join(dir, "shard-000.tar")
	writeFile(t, shard, func(f *os.File) error {
		tw := tar.NewWriter(f)
		for i, k := range keys {
			for _, m := range []struct {
				name string
				data []byte
			}{{k + ".cls", []byte(fmt.Sprint(i))}, {k + ".jpg", imgs[k]}} {
				if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data))}); err != nil {
					return err
				}
				if _, err := tw.Write(m.data); err != nil {
					return err
				}
			}
		}
		return tw.Close()
	})
	// Parquet: a binary image column and a string id column.
	type row struct {
		Key   string `parquet:"key"`
		Image []byte `parquet:"image"`
	}
	pq := filepath.Join(dir, "images.parquet")
	writeFile(t, pq, func(f *os.File) error {
		w := parquet.NewGenericWriter[row](f)
		for _, k := range keys {
			if _, err := w.Write([]row{{Key: "pq-" + k, Image: imgs[k]}}); err != nil {
				return err
			}
		}
		return w.Close()
	})
	// TFRecord of tf.train.Example with image/encoded.
	tfr := filepath.Join(dir, "images.tfrecord")
	writeFile(t, tfr, func(f *os.File) error {
		w := publish.NewTFRecordWriter(f)
		for _, k := range keys {
			ex := publish.EncodeExample(map[string]publish.Feature{
				"image/encoded": {Bytes: [][]byte{imgs[k]}},
				"image/key":     {Bytes: [][]byte{[]byte(k)}},
			})
			if err := w.Write(ex); err != nil {
				return err
			}
		}
		return nil
	})
	// JSON Lines and plain lines of text.
	jsonl := filepath.Join(dir, "docs.jsonl")
	writeFile(t, jsonl, func(f *os.File) error {
		enc := json.NewEncoder(f)
		for _, s := range texts {
			if err := enc.Encode(map[string]string{"text": s, "lang": "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	lines := filepath.Join(dir, "docs.txt")
	os.WriteFile(lines, []byte(strings.Join(texts, "\n")+"\n"), 0o644)
	// A directory of files.
	imgDir := filepath.Join(dir, "loose")
	os.MkdirAll(filepath.Join(imgDir, "sub"), 0o755)
	os.WriteFile(filepath.Join(imgDir, "a.jpg"), imgs["astronaut"], 0o644)
	os.WriteFile(filepath.Join(imgDir, "sub", "b.jpg"), imgs["coffee"], 0o644)

	cases := []struct {
		name    string
		subject string
		paths   []string
		opts    publish.ReadOptions
		want    []string
	}{
		{"webdataset tar", "raw.image.tar", []string{shard}, publish.ReadOptions{Tar: publish.TarOptions{Ext: "jpg"}},
			[]string{"shard-000.tar/astronaut", "shard-000.tar/chelsea", "shard-000.tar/coffee"}},
		{"parquet", "raw.image.parquet", []string{pq}, publish.ReadOptions{Parquet: publish.ParquetOptions{Column: "image", IDColumn: "key"}},
			[]string{"pq-astronaut", "pq-chelsea", "pq-coffee"}},
		{"tfrecord", "raw.image.tfrecord", []string{tfr}, publish.ReadOptions{TFRecord: publish.TFRecordOptions{Feature: "image/encoded"}},
			[]string{"images.tfrecord:0", "images.tfrecord:1", "images.tfrecord:2"}},
		{"directory", "raw.image.dir", []string{imgDir}, publish.ReadOptions{}, []string{"a.jpg", "sub/b.jpg"}},
		{"json lines", "raw.text.jsonl", []string{jsonl}, publish.ReadOptions{JSON: publish.JSONLOptions{Field: "text"}},
			[]string{"docs.jsonl:0", "docs.jsonl:1", "docs.jsonl:2"}},
		{"lines", "raw.text.lines", []string{lines}, publish.ReadOptions{Lines: true},
			[]string{"docs.txt:0", "docs.txt:1", "docs.txt:2"}},
	}
	wantImage, wantText := 0, 0
	for _, c := range cases {
		st, err := publish.Run(context.Background(), r.conn, c.paths, c.opts, publish.Options{Subject: c.subject})
		if err != nil {
			t.Fatalf("%s: publish: %v (%v)", c.name, err, st)
		}
		if strings.HasPrefix(c.subject, "raw.image") {
			wantImage += len(c.want)
		} else {
			wantText += len(c.want)
		}
	}
	imageRows, imageDead := r.collect(t, "image", wantImage)
	textRows, textDead := r.collect(t, "text", wantText)
	for _, c := range cases {
		rows, dead := imageRows, imageDead
		tensor := "pixel_values"
		if strings.HasPrefix(c.subject, "raw.text") {
			rows, dead, tensor = textRows, textDead, "input_ids"
		}
		for _, id := range c.want {
			rw, ok := rows[id]
			if !ok {
				t.Errorf("%s: no tensor for %q (dead letter: %v); published ids: %v", c.name, id, dead[id], sortedKeys(rows))
				continue
			}
			if tt, ok := rw.tensors[tensor]; !ok || tt.Shape[0] != 1 {
				t.Errorf("%s: %q lacks its %s row", c.name, id, tensor)
			}
		}
	}
}

func writeFile(t *testing.T, path string, write func(*os.File) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
