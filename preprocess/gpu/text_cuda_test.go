//go:build cuda

package gpu

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// openTextDevice opens GPU 0 and a TextProcessor on it for spec.
func openTextDevice(t testing.TB, spec text.Spec) (*kernels.Device, *TextProcessor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := kernels.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewTextProcessor(spec, dev, 0)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	return dev, p
}

// TestDeviceTextMatchesCPUProcessor is the emulation parity test on the
// GPU: every corpus document, every spec case, batches of 2,000 and one
// batch of the whole corpus, compared with the CPU Processor.
func TestDeviceTextMatchesCPUProcessor(t *testing.T) {
	items := corpusItems(t)
	paths := tokenizerFiles(t)
	for _, sc := range textSpecCases {
		t.Run(sc.name, func(t *testing.T) {
			spec := sc.spec(paths)
			dev, gpuP := openTextDevice(t, spec)
			defer dev.Close()
			defer gpuP.Close()
			cpuP, err := text.NewProcessor(spec, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, batch := range []int{2000, len(items)} {
				same, rows := 0, 0
				for s := 0; s < len(items); s += batch {
					part := items[s:min(s+batch, len(items))]
					got, err := gpuP.Process(context.Background(), part)
					if err != nil {
						t.Fatal(err)
					}
					want, err := cpuP.Process(context.Background(), part)
					if err != nil {
						t.Fatal(err)
					}
					same += compareTextBatches(t, got, want)
					rows += want.Len()
				}
				t.Logf("batches of %d: %d of %d rows identical on %s", batch, same, rows, dev.Name())
				if same != rows {
					t.Errorf("batches of %d: %d of %d rows differ", batch, rows-same, rows)
				}
			}
		})
	}
}

// TestDeviceTextMatchesGoldens compares the GPU path with the Hugging Face
// oracle's ids (max_length 128) on every corpus document.
func TestDeviceTextMatchesGoldens(t *testing.T) {
	docs := textCorpus(t)
	paths := tokenizerFiles(t)
	for _, name := range []string{"bert-base-uncased", "bert-cased"} {
		t.Run(name, func(t *testing.T) {
			golden := readGolden(t, "golden-"+name+"-128.jsonl.gz")
			spec := text.DefaultSpec()
			spec.Tokenizer = paths[name]
			spec.Padding, spec.InvalidUTF8 = text.PadMaxLength, text.ReplaceInvalid
			dev, p := openTextDevice(t, spec)
			defer dev.Close()
			defer p.Close()
			items := make([]preprocess.Item, len(docs))
			for i, d := range docs {
				items[i] = preprocess.Item{ID: fmt.Sprint(i), Data: d}
			}
			b, err := p.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			if b.Len() != len(docs) || len(b.Failed) > 0 {
				t.Fatalf("%d rows, failures %v", b.Len(), b.Failed)
			}
			same := 0
			for i, g := range golden {
				row := rowInts(b, i)
				ok := b.RowFacts["num_tokens"][i] == len(g.IDs)
				for j := range spec.MaxLength {
					id, mask, typ := p.model.kernel.PadID, int32(0), int32(0)
					if j < len(g.IDs) {
						id, mask, typ = g.IDs[j], 1, g.TypeIDs[j]
					}
					ok = ok && row[0][j] == id && row[1][j] == mask && row[2][j] == typ
				}
				if ok {
					same++
				} else if i-same < 5 {
					t.Errorf("document %d %.80q:\n got  %v\n want %v", i, docs[i], row[0], g.IDs)
				}
			}
			t.Logf("%s on %s: %d of %d documents identical to Hugging Face (%.3f %%)", name, dev.Name(), same, len(docs), 100*float64(same)/float64(len(docs)))
			if same != len(docs) {
				t.Errorf("%d documents differ from Hugging Face", len(docs)-same)
			}
		})
	}
}

// TestDeviceTextHostileCases runs the hand-made hostile documents on the
// device, alone and in one batch, for every spec case (a batch of only
// added tokens has no text span: no wp_tokenize launch).
func TestDeviceTextHostileCases(t *testing.T) {
	paths := tokenizerFiles(t)
	for _, sc := range textSpecCases {
		spec := sc.spec(paths)
		dev, gpuP := openTextDevice(t, spec)
		cpuP, err := text.NewProcessor(spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		var all []preprocess.Item
		batches := [][]preprocess.Item{}
		for _, c := range hostileCases() {
			it := preprocess.Item{ID: c.name, Data: []byte(c.doc)}
			all = append(all, it)
			batches = append(batches, []preprocess.Item{it})
		}
		batches = append(batches, all)
		t.Run(sc.name, func(t *testing.T) {
			for _, items := range batches {
				got, err := gpuP.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpuP.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				if same := compareTextBatches(t, got, want); same != want.Len() {
					t.Errorf("batch starting with %q: %d of %d rows differ", items[0].ID, want.Len()-same, want.Len())
				}
			}
		})
		if err := gpuP.Close(); err != nil {
			t.Error(err)
		}
		if err := dev.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestDeviceTextConcurrentBatches runs batches from several goroutines
// at once (all slots busy) and checks each against the CPU Processor.
func TestDeviceTextConcurrentBatches(t *testing.T) {
	items := corpusItems(t)
	spec := text.DefaultSpec()
	spec.InvalidUTF8 = text.ReplaceInvalid
	dev, gpuP := openTextDevice(t, spec)
	defer dev.Close()
	defer gpuP.Close()
	cpuP, err := text.NewProcessor(spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	const workers, batch = 6, 1500
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for s := w * batch; s < len(items); s += workers * batch {
				part := items[s:min(s+batch, len(items))]
				got, err := gpuP.Process(context.Background(), part)
				if err != nil {
					errs <- err
					return
				}
				want, err := cpuP.Process(context.Background(), part)
				if err != nil {
					errs <- err
					return
				}
				for k := range want.Tensors {
					if string(got.Tensors[k].Data) != string(want.Tensors[k].Data) {
						errs <- fmt.Errorf("batch at %d: tensor %s differs", s, want.Tensors[k].Name)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// benchDocs returns n corpus documents (the corpus repeated, invalid
// UTF-8 included: the specs replace it) and their total bytes.
func benchDocs(t testing.TB, n int) ([]preprocess.Item, int) {
	docs := textCorpus(t)
	items := make([]preprocess.Item, n)
	size := 0
	for i := range items {
		d := docs[i%len(docs)]
		items[i] = preprocess.Item{ID: fmt.Sprint(i), Data: d}
		size += len(d)
	}
	return items, size
}

var textBenchSizes = []int{100, 1000, 10000, 100000}

// BenchmarkTextGPU is the GPU text path (CPU preparation + kernels +
// copies) on batches of corpus documents, bert-base-uncased, max_length
// 128, padding longest, int64: docs/s and MB/s.
func BenchmarkTextGPU(b *testing.B) {
	spec := text.DefaultSpec()
	spec.InvalidUTF8 = text.ReplaceInvalid
	dev, p := openTextDevice(b, spec)
	defer dev.Close()
	defer p.Close()
	for _, n := range textBenchSizes {
		items, size := benchDocs(b, n)
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			benchText(b, p, items, size)
		})
	}
}

// BenchmarkTextCPU is the CPU text.Processor on all cores on the same
// batches, the in-run reference.
func BenchmarkTextCPU(b *testing.B) {
	spec := text.DefaultSpec()
	spec.InvalidUTF8 = text.ReplaceInvalid
	p, err := text.NewProcessor(spec, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range textBenchSizes {
		items, size := benchDocs(b, n)
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			benchText(b, p, items, size)
		})
	}
}

// BenchmarkTextGPUInflight runs 3 batches at once (3 goroutines), as a
// worker with inflight 3 does, to show the overlap of preparation,
// upload, kernels and download across batches; docs/s counts all three.
func BenchmarkTextGPUInflight(b *testing.B) {
	spec := text.DefaultSpec()
	spec.InvalidUTF8 = text.ReplaceInvalid
	dev, p := openTextDevice(b, spec)
	defer dev.Close()
	defer p.Close()
	const inflight = 3
	for _, n := range []int{10000, 100000} {
		items, size := benchDocs(b, n)
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(inflight * size))
			for b.Loop() {
				errs := make(chan error, inflight)
				for range inflight {
					go func() {
						_, err := p.Process(context.Background(), items)
						errs <- err
					}()
				}
				for range inflight {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(inflight*n)*float64(b.N)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

func benchText(b *testing.B, p preprocess.Processor, items []preprocess.Item, size int) {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var kernel, upload, download time.Duration
	for b.Loop() {
		batch, err := p.Process(context.Background(), items)
		if err != nil {
			b.Fatal(err)
		}
		kernel += batch.Timings[preprocess.StageKernel]
		upload += batch.Timings[preprocess.StageUpload]
		download += batch.Timings[preprocess.StageDownload]
	}
	b.ReportMetric(float64(len(items))*float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	if kernel > 0 {
		b.ReportMetric(float64(kernel.Microseconds())/float64(b.N), "kernel-µs/op")
		b.ReportMetric(float64(upload.Microseconds())/float64(b.N), "upload-µs/op")
		b.ReportMetric(float64(download.Microseconds())/float64(b.N), "download-µs/op")
	}
}

// TestDeviceTextClose: Process after Close fails with ErrClosed (a batch
// error, not bad input); Close is idempotent and fine after Device.Close.
func TestDeviceTextClose(t *testing.T) {
	dev, p := openTextDevice(t, text.DefaultSpec())
	items := []preprocess.Item{{ID: "a", Data: []byte("hello world")}}
	if _, err := p.Process(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.Process(context.Background(), items); !errors.Is(err, kernels.ErrClosed) || errors.Is(err, preprocess.ErrBadInput) {
		t.Errorf("Process after Close = %v, want ErrClosed", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close after Device.Close: %v", err)
	}
}
