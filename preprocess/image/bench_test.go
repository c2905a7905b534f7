package image

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/preprocess"
)

// The benchmarks run on testdata/corpus/bench_*.jpg: five real photographs
// of about one megapixel. Compare runs with benchstat:
//
//	go test ./preprocess/image -run '^$' -bench . -count 6 -cpu 1 > new.txt
//	benchstat old.txt new.txt
//
// images/s is per benchmark goroutine; -cpu 1 gives one core's figures.

func benchFiles(b *testing.B) [][]byte {
	b.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "corpus", "bench_*.jpg"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no bench_*.jpg in testdata/corpus: %v", err)
	}
	var out [][]byte
	for _, n := range names {
		out = append(out, readFile(b, n))
	}
	return out
}

func totalBytes(files [][]byte) int64 {
	n := 0
	for _, f := range files {
		n += len(f)
	}
	return int64(n)
}

// reportImages reports images per second of wall time, and images per
// second of the process's CPU time since cpu0 (less sensitive to other work
// on a shared machine; with -cpu 1 it is one core's throughput).
func reportImages(b *testing.B, perOp int, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "images/s")
	if d := cpuTime() - cpu0; d > 0 {
		b.ReportMetric(float64(b.N*perOp)/d.Seconds(), "images/cpu-s")
	}
}

// cpuTime is the CPU time (user+system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGoJPEGDecode is the reference for the pure-Go target: Go's
// image/jpeg decoding alone (no colour conversion). One op = every file once.
func BenchmarkGoJPEGDecode(b *testing.B) {
	files := benchFiles(b)
	b.SetBytes(totalBytes(files))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for _, f := range files {
			if _, err := jpeg.Decode(bytes.NewReader(f)); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportImages(b, len(files), cpu0)
}

// BenchmarkDecode: DecodeRGB's work (header checks, decoding, upsampling
// and colour conversion of the whole image) with the decoder's buffers reused.
func BenchmarkDecode(b *testing.B) {
	files := benchFiles(b)
	var d decoder
	s := DefaultSpec()
	b.SetBytes(totalBytes(files))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for _, f := range files {
			if _, err := d.decode(f, s); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportImages(b, len(files), cpu0)
}

// BenchmarkTransform: from decoded pixels to one output row (resize, crop,
// normalise, layout, dtype), for each dtype. Bytes are decoded RGB bytes.
func BenchmarkTransform(b *testing.B) {
	files := benchFiles(b)
	var imgs []*RGB
	var px int64
	for _, f := range files {
		img, err := DecodeRGB(f, DefaultSpec())
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, img)
		px += int64(len(img.Pix))
	}
	for _, dt := range []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.Uint8} {
		b.Run(string(dt), func(b *testing.B) {
			s := DefaultSpec()
			s.DType = dt
			p := newProcessor(b, s, 1)
			row := make([]byte, p.RowBytes())
			b.SetBytes(px)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				for _, img := range imgs {
					if err := p.TransformRGB(row, img); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportImages(b, len(imgs), cpu0)
		})
	}
}

// BenchmarkItem: one item from JPEG bytes to its output row, as the
// Processor's goroutines do it (decoding only the region the crop needs).
func BenchmarkItem(b *testing.B) {
	files := benchFiles(b)
	p := newProcessor(b, DefaultSpec(), 1)
	w := new(worker)
	row := make([]byte, p.RowBytes())
	b.SetBytes(totalBytes(files))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for _, f := range files {
			if _, _, err := p.processOne(w, row, f); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportImages(b, len(files), cpu0)
}

// BenchmarkProcess: whole batches of 32 items on 1 and 2 goroutines (run
// with -cpu 2 or more to see the scaling).
func BenchmarkProcess(b *testing.B) {
	files := benchFiles(b)
	var items []preprocess.Item
	for i := 0; len(items) < 32; i++ {
		items = append(items, preprocess.Item{ID: fmt.Sprint(i), Data: files[i%len(files)]})
	}
	var size int64
	for _, it := range items {
		size += int64(len(it.Data))
	}
	for _, threads := range []int{1, 2, 4, 16} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			p := newProcessor(b, DefaultSpec(), threads)
			b.SetBytes(size)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				batch, err := p.Process(context.Background(), items)
				if err != nil || len(batch.Failed) > 0 {
					b.Fatal(err, batch.Failed)
				}
			}
			reportImages(b, len(items), cpu0)
		})
	}
}

// BenchmarkProcessDecodeBudget measures what holding each image's decode
// estimate against image.decode_memory costs (a second header parse and a
// lock per image), against no budget, on 2 threads.
func BenchmarkProcessDecodeBudget(b *testing.B) {
	files := benchFiles(b)
	items := make([]preprocess.Item, 32)
	for i := range items {
		items[i] = preprocess.Item{ID: fmt.Sprint(i), Data: files[i%len(files)]}
	}
	for _, c := range []struct {
		name   string
		budget int64
	}{{"none", 0}, {"1GiB", 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			s := DefaultSpec()
			s.DecodeMemory = c.budget
			p := newProcessor(b, s, 2)
			cpu0 := cpuTime()
			for b.Loop() {
				batch, err := p.Process(context.Background(), items)
				if err != nil || len(batch.Failed) > 0 {
					b.Fatal(err, batch.Failed)
				}
				batch.Release()
			}
			reportImages(b, len(items), cpu0)
		})
	}
}
