package service_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The NATS server's and client's background goroutines end shortly
		// after shutdown; the tests wait for them through t.Cleanup.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
	)
}

const samples = "../../bench/samples"

// running is a service under test with a client connection to its broker.
type running struct {
	svc  *service.Service
	conn *queue.Conn
	cfg  *config.Config
}

// startService runs the default configuration (image and text pipelines,
// on testDevice) against an in-process server; edit adjusts the
// configuration.
func startService(t *testing.T, edit func(*config.Config)) *running {
	t.Helper()
	srv := queuetest.RunServer(t)
	cfg := config.Default()
	cfg.NATS.URL = srv.ClientURL()
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Device = testDevice
	for i := range cfg.Pipelines {
		cfg.Pipelines[i].Batch.MaxWait = 20 * time.Millisecond
	}
	if edit != nil {
		edit(cfg)
	}
	svc, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		svc.Drain()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			cancel()
			<-done
			t.Errorf("service did not drain within 60s")
		}
		cancel()
	})
	queuetest.WaitFor(t, 60*time.Second, svc.Ready)
	if svc.Device() != cfg.Device {
		t.Fatalf("service runs on %q, the test asked for %q", svc.Device(), cfg.Device)
	}
	return &running{svc: svc, conn: queuetest.Connect(t, srv.ClientURL()), cfg: cfg}
}

func (r *running) publish(t *testing.T, subject, id string, data []byte) {
	t.Helper()
	hdr := nats.Header{}
	hdr.Set(nats.MsgIdHdr, id)
	if _, err := r.conn.Publish(context.Background(), subject, data, hdr); err != nil {
		t.Fatal(err)
	}
}

// row is one item's tensors as published.
type row struct {
	tensors map[string]preprocess.Tensor // one row each
	facts   map[string]json.RawMessage
}

// collect waits until want items are accounted for in the pipeline's
// output and dead-letter streams, and returns them by item id.
func (r *running) collect(t *testing.T, pipeline string, want int) (map[string]row, map[string]nats.Header) {
	t.Helper()
	p, _ := r.cfg.Pipeline(pipeline)
	rows := map[string]row{}
	dead := map[string]nats.Header{}
	read := func() error {
		for _, m := range streamMessages(t, r.conn, p.OutputStream) {
			ts, md, err := safetensors.Decode(m.Data)
			if err != nil {
				t.Fatalf("output message %d: %v", m.Sequence, err)
			}
			var ids []string
			if err := json.Unmarshal([]byte(md["ids"]), &ids); err != nil {
				t.Fatalf("output message %d: ids %q: %v", m.Sequence, md["ids"], err)
			}
			if md["pipeline"] != pipeline {
				t.Fatalf("output message %d: pipeline metadata %q", m.Sequence, md["pipeline"])
			}
			facts := map[string][]json.RawMessage{}
			for k, v := range md {
				if k == "ids" || k == "pipeline" {
					continue
				}
				var vs []json.RawMessage
				if err := json.Unmarshal([]byte(v), &vs); err != nil || len(vs) != len(ids) {
					t.Fatalf("output message %d: row fact %s = %s: want one value per row", m.Sequence, k, v)
				}
				facts[k] = vs
			}
			for i, id := range ids {
				if _, dup := rows[id]; dup {
					t.Fatalf("item %s published twice", id)
				}
				rw := row{tensors: map[string]preprocess.Tensor{}, facts: map[string]json.RawMessage{}}
				for _, tt := range ts {
					if tt.Shape[0] != len(ids) {
						t.Fatalf("tensor %s has %d rows for %d ids", tt.Name, tt.Shape[0], len(ids))
					}
					rw.tensors[tt.Name] = tt.Rows(i, i+1)
				}
				for k, vs := range facts {
					rw.facts[k] = vs[i]
				}
				rows[id] = rw
			}
		}
		for _, m := range streamMessages(t, r.conn, p.DeadLetterStream) {
			dead[m.Header.Get("Stoker-Item-Id")] = m.Header
		}
		if got := len(rows) + len(dead); got < want {
			return fmt.Errorf("%d of %d items accounted for (%d published, %d dead letters)", got, want, len(rows), len(dead))
		}
		return nil
	}
	queuetest.WaitFor(t, 60*time.Second, func() error {
		clear(rows)
		clear(dead)
		return read()
	})
	return rows, dead
}

func streamMessages(t *testing.T, c *queue.Conn, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := c.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m)
	}
	return out
}

func TestImagesMatchTorchvisionGoldens(t *testing.T) {
	checkImagesMatchGoldens(t, startService(t, nil))
}

// checkImagesMatchGoldens publishes the sample images to r and checks
// that every decodable one is published within tolerance of torchvision
// and the truncated one is dead-lettered as corrupt.
func checkImagesMatchGoldens(t *testing.T, r *running) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(samples, "images", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample images: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, "raw.image.samples", filepath.Base(f), b)
	}
	rows, dead := r.collect(t, "image", len(files))
	golden := readImageGoldens(t)
	for name, want := range golden {
		rw, ok := rows[name]
		if !ok {
			t.Errorf("%s: no tensor published (dead letter: %v)", name, dead[name])
			continue
		}
		px := rw.tensors["pixel_values"]
		if px.DType != preprocess.Float32 || fmt.Sprint(px.Shape) != "[1 3 224 224]" {
			t.Fatalf("%s: pixel_values %s %v, want F32 [1 3 224 224]", name, px.DType, px.Shape)
		}
		maxDiff, meanDiff := compareFloat32(px.Data, want)
		t.Logf("%s: max |stoker - torchvision| = %.4f, mean = %.5f", name, maxDiff, meanDiff)
		if maxDiff > 0.04 || meanDiff > 0.002 {
			t.Errorf("%s: max %.4f (limit 0.04), mean %.5f (limit 0.002) against torchvision", name, maxDiff, meanDiff)
		}
		if _, ok := rw.facts["original_size"]; !ok {
			t.Errorf("%s: no original_size row fact", name)
		}
	}
	hdr, ok := dead["broken-truncated.jpg"]
	if !ok {
		t.Fatalf("the truncated JPEG was not dead-lettered; published: %v", keys(rows))
	}
	if hdr.Get("Stoker-Reason") != preprocess.ReasonCorrupt || !strings.Contains(hdr.Get("Stoker-Error"), "broken-truncated.jpg") {
		t.Errorf("truncated JPEG dead letter: reason %q error %q", hdr.Get("Stoker-Reason"), hdr.Get("Stoker-Error"))
	}
	if len(rows) != len(golden) {
		t.Errorf("%d images published, want %d", len(rows), len(golden))
	}
}

// readImageGoldens returns torchvision's tensors for the samples,
// recomputed exactly from the stored uint8 pixels (see testdata/make_goldens.sh).
func readImageGoldens(t *testing.T) map[string][]float32 {
	t.Helper()
	f, err := os.Open("testdata/images.u8.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal(line, &names); err != nil {
		t.Fatal(err)
	}
	mean := [3]float32{0.485, 0.456, 0.406}
	std := [3]float32{0.229, 0.224, 0.225}
	out := map[string][]float32{}
	px := make([]byte, 3*224*224)
	for _, n := range names {
		if _, err := io.ReadFull(br, px); err != nil {
			t.Fatalf("golden %s: %v", n, err)
		}
		v := make([]float32, len(px))
		for i, p := range px {
			c := i / (224 * 224)
			v[i] = (float32(p)/255 - mean[c]) / std[c]
		}
		out[n] = v
	}
	return out
}

func compareFloat32(data []byte, want []float32) (maxDiff, meanDiff float64) {
	var sum float64
	for i, w := range want {
		g := math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		d := math.Abs(float64(g) - float64(w))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		sum += d
		maxDiff = math.Max(maxDiff, d)
	}
	return maxDiff, sum / float64(len(want))
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestTextsMatchHuggingFaceGoldens(t *testing.T) {
	r := startService(t, nil)
	raw, err := os.ReadFile(filepath.Join(samples, "texts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	for i, l := range lines {
		r.publish(t, "raw.text.samples", fmt.Sprintf("texts.txt:%d", i), l)
	}
	rows, dead := r.collect(t, "text", len(lines))
	golden := readTextGoldens(t)
	if len(golden) != len(lines)-1 {
		t.Fatalf("%d goldens for %d valid lines", len(golden), len(lines)-1)
	}
	for i, want := range golden {
		id := fmt.Sprintf("texts.txt:%d", i)
		rw, ok := rows[id]
		if !ok {
			t.Errorf("%s: not published (dead letter %v)", id, dead[id])
			continue
		}
		ids := int64s(t, rw.tensors["input_ids"])
		mask := int64s(t, rw.tensors["attention_mask"])
		types := int64s(t, rw.tensors["token_type_ids"])
		n := len(want)
		if len(ids) < n {
			t.Errorf("%s: %d ids, golden has %d", id, len(ids), n)
			continue
		}
		for k := range ids {
			wantMask := int64(0)
			if k < n {
				wantMask = 1
				if ids[k] != want[k] {
					t.Errorf("%s: token %d is %d, Hugging Face gives %d", id, k, ids[k], want[k])
					break
				}
			} else if ids[k] != 0 {
				t.Errorf("%s: padding token %d is %d, want 0 ([PAD])", id, k, ids[k])
				break
			}
			if mask[k] != wantMask || types[k] != 0 {
				t.Errorf("%s: position %d mask %d type %d", id, k, mask[k], types[k])
				break
			}
		}
	}
	bad := fmt.Sprintf("texts.txt:%d", len(lines)-1)
	if h, ok := dead[bad]; !ok || h.Get("Stoker-Reason") != preprocess.ReasonInvalidText {
		t.Errorf("invalid UTF-8 line: dead letter %v", h)
	}
}

func readTextGoldens(t *testing.T) [][]int64 {
	t.Helper()
	f, err := os.Open("testdata/texts.bert.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int64
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var g struct{ IDs []int64 }
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		out = append(out, g.IDs)
	}
	return out
}

func int64s(t *testing.T, tt preprocess.Tensor) []int64 {
	t.Helper()
	if tt.DType != preprocess.Int64 {
		t.Fatalf("tensor %s is %s, want I64", tt.Name, tt.DType)
	}
	out := make([]int64, len(tt.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(tt.Data[8*i:]))
	}
	return out
}
