package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/bench"
	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/preprocess"
)

func TestTensorIDs(t *testing.T) {
	data, err := safetensors.Encode([]preprocess.Tensor{{Name: "x", DType: preprocess.Uint8, Shape: []int{2, 1}, Data: []byte{1, 2}}},
		map[string]string{"ids": `["a-1","b \"2\""]`, "pipeline": "p"})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tensorIDs(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "a-1" || ids[1] != `b "2"` {
		t.Errorf("ids %q", ids)
	}
	bad := []struct {
		name string
		data []byte
	}{
		{"shorter than the length", []byte{1, 2}},
		{"length past the end", []byte{255, 0, 0, 0, 0, 0, 0, 0, '{', '}'}},
		{"no ids", []byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tensorIDs(tc.data); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestRunTiny runs the whole service in process on a tiny workload and
// checks that every item arrived, as a tensor row or a dead letter.
func TestRunTiny(t *testing.T) {
	texts := bench.SyntheticTexts([]int{40, 300}, 3, 1)
	texts = append(texts, preprocess.Item{ID: "latin1", Data: []byte("caf\xe9")}) // invalid UTF-8: dead-lettered
	imgs, err := bench.SyntheticImages([]bench.Size{{W: 80, H: 60}}, bench.FormatJPEG, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	imgs = append(imgs, preprocess.Item{ID: "broken", Data: imgs[0].Data[:200]})
	tests := []struct {
		name     string
		pipeline string
		inputs   []preprocess.Item
		items    int
		workers  int
		wantDead int
	}{
		{"text, two workers", "text", texts, 70, 2, 10},
		{"image, one worker", "image", imgs, 12, 1, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Device = "cpu"
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := Run(ctx, Options{
				Config: cfg, Pipeline: tc.pipeline, Workers: tc.workers, Items: tc.items, Inputs: tc.inputs,
				Rate: 200, StageSeconds: 0.1, Timeout: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, ph := range []*Phase{&res.Full, res.Paced} {
				if ph == nil {
					t.Fatal("no paced phase")
				}
				if ph.Tensors+ph.DeadLetters != tc.items || ph.DeadLetters != tc.wantDead {
					t.Errorf("%d tensor rows + %d dead letters, want %d items with %d dead letters", ph.Tensors, ph.DeadLetters, tc.items, tc.wantDead)
				}
				if ph.Latency.N != tc.items || ph.ItemsPerS <= 0 || ph.OutputMsgs == 0 {
					t.Errorf("phase %+v", ph)
				}
			}
			if res.Paced.RatePerS != 200 {
				t.Errorf("paced at %v items/s, want the 200 asked for", res.Paced.RatePerS)
			}
			if res.StageItemsPerS <= 0 || res.BrokerCeilingPerS <= 0 || res.BoundPerS != min(res.StageItemsPerS, res.BrokerCeilingPerS) || res.Fraction <= 0 {
				t.Errorf("result %+v", res)
			}
			rep := &Report{Command: "stoker bench e2e", Result: *res}
			var js, table, md bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back Report
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Result.Full.Tensors != res.Full.Tensors {
				t.Errorf("JSON does not round-trip: %v", err)
			}
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			for _, out := range []string{table.String(), md.String()} {
				if !strings.Contains(out, "of min(stage, broker)") || !strings.Contains(out, "latency when paced") {
					t.Errorf("summary lacks the fraction or the paced latency:\n%s", out)
				}
			}
		})
	}
}

func TestRunRejectsUnknownPipeline(t *testing.T) {
	_, err := Run(context.Background(), Options{Config: config.Default(), Pipeline: "audio", Inputs: []preprocess.Item{{ID: "x", Data: []byte("x")}}})
	if err == nil || !strings.Contains(err.Error(), `"audio"`) {
		t.Errorf("err = %v, want one naming the pipeline", err)
	}
	if errors.Is(err, ErrIncomplete) {
		t.Error("wrong sentinel")
	}
}
