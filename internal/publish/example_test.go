package publish_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/stoker-ml/stoker/internal/publish"
)

// A WebDataset shard: members sharing a key form one sample; the .jpg
// member is the payload, the small .cls member a metadata header.
func ExampleNewTarReader() {
	var shard bytes.Buffer
	tw := tar.NewWriter(&shard)
	for _, m := range []struct{ name, data string }{
		{"000001.jpg", "\xff\xd8 first image"}, {"000001.cls", "3\n"},
		{"000002.jpg", "\xff\xd8 second image"}, {"000002.cls", "7\n"},
	} {
		tw.WriteHeader(&tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644})
		tw.Write([]byte(m.data))
	}
	tw.Close()

	r, err := publish.NewTarReader(&shard, "shard-000.tar", publish.TarOptions{Ext: "jpg"})
	if err != nil {
		panic(err)
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d bytes, cls=%s\n", rec.ID, len(rec.Data), rec.Meta["cls"])
	}
	// Output:
	// shard-000.tar/000001: 14 bytes, cls=3
	// shard-000.tar/000002: 15 bytes, cls=7
}

// TFRecord files are framed with masked CRC32C checksums and hold
// serialized tf.train.Example protos.
func ExampleNewTFRecordReader() {
	var file bytes.Buffer
	w := publish.NewTFRecordWriter(&file)
	w.Write(publish.EncodeExample(map[string]publish.Feature{
		"image/encoded": {Bytes: [][]byte{[]byte("jpeg bytes")}},
		"image/class":   {Int64: []int64{5}},
	}))
	r, _ := publish.NewTFRecordReader(&file, "train.tfrecord", publish.TFRecordOptions{
		Feature: "image/encoded", MetaFeatures: []string{"image/class"},
	})
	rec, err := r.Next()
	fmt.Println(rec.ID, string(rec.Data), rec.Meta["image/class"], err)
	// Output: train.tfrecord:0 jpeg bytes 5 <nil>
}
