package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/metrics"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/queue"
)

// targetLabels are added by Prometheus (instance, job) or by the scrape
// configuration (component: ServiceMonitor relabelling, compose's static
// labels), not by stoker.
var targetLabels = []string{"instance", "job", "component"}

// knownValues are the fixed label values the dashboard and rules may
// select on.
var knownValues = map[string][]string{
	"stage": {metrics.StageQueueWait, metrics.StageDecode, metrics.StageTransform, metrics.StageUpload, metrics.StageKernel,
		metrics.StageDownload, metrics.StageProcess, metrics.StageEncode, metrics.StagePublish},
	"outcome": {metrics.OutcomeOK, metrics.OutcomeDeadLetter, metrics.OutcomeRetry},
	"device":  {service.DeviceCPU, service.DeviceCUDA},
	"reason": {preprocess.ReasonEmpty, preprocess.ReasonTooLarge, preprocess.ReasonTooManyPixels, preprocess.ReasonUnsupported,
		preprocess.ReasonCorrupt, preprocess.ReasonInvalidText, preprocess.ReasonOther, metrics.ReasonTransient, metrics.ReasonMaxDeliver,
		kernels.ReasonOutOfMemory, kernels.ReasonDeviceLost},
	"trigger": {string(batch.TriggerMaxItems), string(batch.TriggerMaxBytes), string(batch.TriggerMaxWait), string(batch.TriggerFlush), string(batch.TriggerRetry)},
}

// family is what a scrape says of one metric family.
type family struct {
	typ    dto.MetricType
	labels map[string][]string // label name → values seen
	series []series
}

type series struct {
	labels map[string]string
	value  float64 // counters and gauges
}

// sum adds the values of the series whose labels include every pair of match.
func (f family) sum(match map[string]string) float64 {
	var total float64
	for _, s := range f.series {
		if subset(match, s.labels) {
			total += s.value
		}
	}
	return total
}

// driftFamilies are recorded only once the worker calls
// Metrics.ObserveBatch on each processed batch (and SetUnknownTokenID for
// text pipelines).
var driftFamilies = []string{"stoker_image_channel_mean", "stoker_image_channel_std", "stoker_image_input_height_pixels",
	"stoker_image_input_width_pixels", "stoker_text_item_tokens", "stoker_text_tokens_total", "stoker_text_unknown_tokens_total"}

// TestMetricsUsedAreExported starts a worker in this process (embedded
// NATS, the built-in configuration), feeds it good, bad and redelivered
// items so that labelled series exist, scrapes /metrics, and checks every
// metric, label and fixed label value the dashboard and the rules use.
func TestMetricsUsedAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a worker")
	}
	fams, addr := runWorkerAndScrape(t)

	t.Run("probes answer on the metrics port", func(t *testing.T) {
		for _, p := range []string{"/readyz", "/healthz"} {
			resp, err := http.Get("http://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s", p, resp.Status)
			}
		}
	})

	t.Run("observed values are known", func(t *testing.T) {
		for label, known := range knownValues {
			for name, f := range fams {
				for _, v := range f.labels[label] {
					if !slices.Contains(known, v) {
						t.Errorf("%s{%s=%q}: value not in the known set %q", name, label, v, known)
					}
				}
			}
		}
	})

	dash := dashboardUsages(t)
	rules, recorded := ruleUsages(t)
	// Labels a recorded series keeps: its definition's grouping labels.
	recordedLabels := map[string][]string{}
	for _, u := range rules {
		if name, ok := strings.CutPrefix(u.where, "recording rule "); ok {
			recordedLabels[name] = groupingLabels(u.expr)
		}
	}
	var missingDrift []string
	drift := driftReference(t)
	for _, u := range append(dash, rules...) {
		t.Run(u.where, func(t *testing.T) {
			available := slices.Clone(targetLabels)
			for _, ref := range parseRefs(t, u.expr) {
				if strings.Contains(ref.name, ":") {
					if !recorded[ref.name] {
						t.Errorf("recorded series %s is not defined in prometheus/rules.yml", ref.name)
					}
					available = append(available, recordedLabels[ref.name]...)
					continue
				}
				labels, ok := labelsOf(t, fams, ref.name)
				if !ok && slices.Contains(driftFamilies, baseName(ref.name)) {
					missingDrift = append(missingDrift, baseName(ref.name))
					labels, ok = labelsOf(t, drift, ref.name)
				}
				if !ok {
					t.Errorf("%s is not exported by a running worker", ref.name)
					continue
				}
				available = append(available, labels...)
				for _, m := range ref.matchers {
					if !slices.Contains(labels, m.label) && !slices.Contains(targetLabels, m.label) {
						t.Errorf("%s has no label %q (it has %q)", ref.name, m.label, labels)
					}
					checkValue(t, ref.name, m)
				}
			}
			for _, l := range append(groupingLabels(u.expr), u.labelRefs...) {
				if !slices.Contains(available, l) {
					t.Errorf("label %q is used, but none of the expression's metrics has it (%q)", l, available)
				}
			}
		})
	}
	t.Run("drift families (the worker must call Metrics.ObserveBatch and SetUnknownTokenID)", func(t *testing.T) {
		slices.Sort(missingDrift)
		if missingDrift = slices.Compact(missingDrift); len(missingDrift) > 0 {
			t.Errorf("used by the dashboard or rules but not recorded by the running worker: %q", missingDrift)
		}
	})
}

// driftReference records one batch of each kind through the metrics
// package's own API and returns the drift families as a scrape shows them:
// the labels to expect until the worker records them itself.
func driftReference(t *testing.T) map[string]family {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.SetUnknownTokenID("text", 100)
	m.ObserveBatch("image", &preprocess.Batch{IDs: []string{"a"},
		Tensors:  []preprocess.Tensor{{Name: metrics.TensorPixelValues, DType: preprocess.Uint8, Shape: []int{1, 3, 1, 1}, Data: []byte{1, 2, 3}}},
		RowFacts: map[string][]any{metrics.FactOriginalSize: {[2]int{1, 1}}}})
	ids := []byte{101, 0, 0, 0, 102, 0, 0, 0}
	mask := []byte{1, 0, 0, 0, 1, 0, 0, 0}
	m.ObserveBatch("text", &preprocess.Batch{IDs: []string{"b"},
		Tensors: []preprocess.Tensor{{Name: metrics.TensorInputIDs, DType: preprocess.Int32, Shape: []int{1, 2}, Data: ids},
			{Name: metrics.TensorAttentionMask, DType: preprocess.Int32, Shape: []int{1, 2}, Data: mask}},
		RowFacts: map[string][]any{metrics.FactNumTokens: {2}}})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	fams := scrapeFamilies(t, strings.TrimPrefix(srv.URL, "http://"))
	for _, name := range driftFamilies {
		if _, ok := fams[name]; !ok {
			t.Fatalf("ObserveBatch did not record %s", name)
		}
	}
	return fams
}

// baseName strips a histogram's series suffix.
func baseName(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b
		}
	}
	return name
}

// labelsOf returns the label names a series of name carries, from the
// scrape or, for the GPU families a worker without NVML cannot export,
// from metrics.GPUFamilies.
func labelsOf(t *testing.T, fams map[string]family, name string) ([]string, bool) {
	t.Helper()
	if f, ok := fams[name]; ok {
		return keys(f.labels), true
	}
	base := baseName(name)
	if f, ok := fams[base]; ok && base != name {
		if f.typ != dto.MetricType_HISTOGRAM {
			t.Errorf("%s: %s is a %v, not a histogram", name, base, f.typ)
		}
		labels := keys(f.labels)
		if strings.HasSuffix(name, "_bucket") {
			labels = append(labels, "le")
		}
		return labels, true
	}
	for _, g := range metrics.GPUFamilies {
		if g.Name == name {
			if _, ok := fams[metrics.NVMLAvailable.Name]; !ok {
				t.Errorf("%s: the worker exports no %s either", name, metrics.NVMLAvailable.Name)
			}
			return g.Labels, true
		}
	}
	return nil, false
}

func keys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkValue checks a matcher on a fixed-value label selects known values.
func checkValue(t *testing.T, metric string, m matcher) {
	t.Helper()
	known, fixed := knownValues[m.label]
	if !fixed || strings.Contains(m.value, "$") {
		return
	}
	for _, v := range strings.Split(m.value, "|") {
		if !slices.Contains(known, v) {
			t.Errorf("%s{%s%s%q}: %q is not a value stoker uses (%q)", metric, m.label, m.op, m.value, v, known)
		}
	}
}

// runWorkerAndScrape runs the service until the items it was fed are
// settled and returns the parsed scrape and the metrics address.
func runWorkerAndScrape(t *testing.T) (map[string]family, string) {
	t.Helper()
	dataDir := t.TempDir()
	// An image delivered once and handed back before the worker starts: the
	// worker sees it redelivered.
	seedRedelivery(t, dataDir, jpegBytes(t))

	cfg := config.Default()
	cfg.NATS.URL = ""
	cfg.Embedded.Listen = "127.0.0.1:0"
	cfg.Embedded.DataDir = dataDir
	cfg.Metrics.Addr = "127.0.0.1:0"
	urls := make(chan string, 1)
	svc, err := service.New(cfg, service.Options{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEmbedded: func(u string) { urls <- u },
	})
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
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("service: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("service did not drain within 60s")
		}
		cancel()
	})

	waitFor(t, 60*time.Second, "the worker to be ready", func() error {
		if svc.MetricsAddr() == "" {
			return errors.New("no metrics address yet")
		}
		return svc.Ready()
	})
	addr := svc.MetricsAddr()
	conn, err := queue.Connect(ctx, queue.ConnOptions{URL: <-urls, Name: "deploy-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for subject, data := range map[string][]byte{
		"raw.image.good": jpegBytes(t),
		"raw.image.bad":  []byte("this is not an image"),
		"raw.text.a":     []byte("hello world"),
		"raw.text.b":     []byte("a parrot 🦜 says ⸘hello‽"),
	} {
		if _, err := conn.Publish(ctx, subject, data, nil); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}

	var fams map[string]family
	start := time.Now()
	waitFor(t, 60*time.Second, "every item settled", func() error {
		fams = scrapeFamilies(t, addr)
		for _, want := range []struct {
			name   string
			labels map[string]string
			min    float64
		}{
			{"stoker_items_total", map[string]string{"pipeline": "image", "outcome": "ok"}, 2},
			{"stoker_items_total", map[string]string{"pipeline": "image", "outcome": "dead_letter"}, 1},
			{"stoker_items_total", map[string]string{"pipeline": "text", "outcome": "ok"}, 2},
			{"stoker_redeliveries_total", map[string]string{"pipeline": "image"}, 1},
		} {
			if v := fams[want.name].sum(want.labels); v < want.min {
				return fmt.Errorf("%s%v = %v, want >= %v", want.name, want.labels, v, want.min)
			}
		}
		return nil
	})
	t.Logf("items settled %v after publishing", time.Since(start).Round(time.Millisecond))
	return fams, addr
}

// scrapeFamilies GETs /metrics and parses it.
func scrapeFamilies(t *testing.T, addr string) map[string]family {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]family{}
	for name, mf := range mfs {
		f := family{typ: mf.GetType(), labels: map[string][]string{}}
		for _, m := range mf.GetMetric() {
			sr := series{labels: map[string]string{}, value: m.GetCounter().GetValue() + m.GetGauge().GetValue()}
			for _, l := range m.GetLabel() {
				sr.labels[l.GetName()] = l.GetValue()
				if !slices.Contains(f.labels[l.GetName()], l.GetValue()) {
					f.labels[l.GetName()] = append(f.labels[l.GetName()], l.GetValue())
				}
			}
			f.series = append(f.series, sr)
		}
		out[name] = f
	}
	return out
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", limit, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jpegBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seedRedelivery starts a NATS server on dataDir, creates the image
// pipeline's stream and durable consumer as the worker would but with a
// one-second AckWait, publishes data, takes delivery of it without
// acknowledging it, waits out the AckWait and stops the server. The worker,
// started on the same store, finds the consumer (and uses it as it is) and
// receives the item again with a delivery count of 2. A Nak would not do:
// the server does not keep its redelivery queue across a restart, and the
// item would wait for the AckWait again.
func seedRedelivery(t *testing.T, dataDir string, data []byte) {
	t.Helper()
	var p config.Pipeline
	for _, q := range config.Default().Pipelines {
		if q.Name == "image" {
			p = q
		}
	}
	e, err := queue.StartEmbedded(queue.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.ConnOptions{URL: e.ClientURL(), Name: "deploy-test-seed"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: p.Stream, Subjects: p.Subjects}); err != nil {
		t.Fatal(err)
	}
	const ackWait = time.Second
	cons, err := conn.JetStream().CreateConsumer(ctx, p.Stream, jetstream.ConsumerConfig{
		Durable: p.Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		MaxAckPending: p.MaxAckPending, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: p.Subjects[0],
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Publish(ctx, "raw.image.redelivered", data, nil); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var delivered time.Time
	for range batch.Messages() {
		delivered = time.Now()
	}
	if delivered.IsZero() {
		t.Fatalf("seed: no message fetched (%v)", batch.Error())
	}
	// The delivery must be older than AckWait when the worker's server
	// starts; waiting for a clock, not for asynchronous work.
	time.Sleep(time.Until(delivered.Add(ackWait + 100*time.Millisecond)))
}
