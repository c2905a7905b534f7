package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeGPU is a gpuReader with one GPU whose every field reads.
type fakeGPU struct{ err error }

func (f fakeGPU) available() error { return f.err }
func (f fakeGPU) read() []gpuReading {
	return []gpuReading{{Index: 0, Name: "Fake GPU", UUID: "GPU-0000", Utilization: 0.5, MemUsed: 1 << 30,
		MemTotal: 80 << 30, TemperatureCelsius: 40, PowerWatts: 300, PCIeTX: 1e9, PCIeRX: 2e9}}
}

// populated registers every family with one series each: the worker's
// families by recording into them, the drift families by ObserveBatch, the
// GPU families from a fake NVML reader.
func populated(t *testing.T) (*prometheus.Registry, *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg)
	reg.Unregister(m.GPU)
	m.GPU = newGPUCollector(fakeGPU{})
	reg.MustRegister(m.GPU)

	m.ItemsTotal.WithLabelValues("image", "cpu", OutcomeOK).Inc()
	m.ItemBytesTotal.WithLabelValues("image").Add(10)
	m.OutputBytesTotal.WithLabelValues("image").Add(10)
	m.BatchesTotal.WithLabelValues("image", "cpu", "max_items").Inc()
	m.BatchItems.WithLabelValues("image").Observe(3)
	m.FailuresTotal.WithLabelValues("image", "corrupt").Inc()
	m.DeadLettersTotal.WithLabelValues("image", "corrupt").Inc()
	m.RedeliveriesTotal.WithLabelValues("image").Inc()
	m.StageSeconds.WithLabelValues("image", "cpu", StageDecode).Observe(0.01)
	m.EndToEndSeconds.WithLabelValues("image").Observe(0.1)
	m.InflightBytes.WithLabelValues("image").Set(1)
	m.ConsumerPending.WithLabelValues("image").Set(1)
	m.ConsumerAckPend.WithLabelValues("image").Set(1)
	m.PullFailing.WithLabelValues("image").Set(1)
	m.Up.WithLabelValues("image").Set(1)
	m.SetUnknownTokenID("text", 100)
	m.ObserveBatch("image", imageBatch(t, nchw, f32, [][3]float64{{1, 2, 3}}))
	m.ObserveBatch("text", textBatch([][]int64{{101, 100, 102}}, 3))
	return reg, m
}

// scrape serves reg as /metrics does and returns the body.
func scrape(t *testing.T, reg prometheus.Gatherer) []byte {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func parse(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// collectorFields counts the Metrics fields that are families.
func collectorFields() int {
	n := 0
	typ := reflect.TypeFor[Metrics]()
	coll := reflect.TypeFor[prometheus.Collector]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.IsExported() && f.Type.Implements(coll) && f.Type != reflect.TypeFor[*GPUCollector]() {
			n++
		}
	}
	return n
}

// timeWords mark a family that measures time; its name must end _seconds.
var timeWords = []string{"time", "wait", "latency", "duration", "elapsed", "seconds"}

func TestFamiliesFollowConventions(t *testing.T) {
	reg, _ := populated(t)
	body := scrape(t, reg)
	fams := parse(t, body)

	want := collectorFields() + len(GPUFamilies)
	if len(fams) != want {
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		t.Fatalf("scrape has %d families, want %d (every Metrics field and GPU family populated): %s", len(fams), want, strings.Join(names, " "))
	}
	for name, mf := range fams {
		for _, p := range conventionProblems(name, mf) {
			t.Errorf("%s: %s", name, p)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestConventionCheckCanFail feeds the checks families that break each rule.
func TestConventionCheckCanFail(t *testing.T) {
	cases := []struct {
		name string
		c    prometheus.Collector
	}{
		{"no prefix", prometheus.NewCounter(prometheus.CounterOpts{Name: "items_total", Help: "x"})},
		{"counter without _total", prometheus.NewCounter(prometheus.CounterOpts{Name: "stoker_items", Help: "x"})},
		{"gauge with _total", prometheus.NewGauge(prometheus.GaugeOpts{Name: "stoker_items_total", Help: "x"})},
		{"time histogram without _seconds", prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stoker_decode_time", Help: "x"})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(tc.c)
			if c, ok := tc.c.(prometheus.Counter); ok {
				c.Inc()
			}
			if h, ok := tc.c.(prometheus.Histogram); ok {
				h.Observe(1)
			}
			fams := parse(t, scrape(t, reg))
			for name, mf := range fams {
				if len(conventionProblems(name, mf)) == 0 {
					t.Errorf("%s broke a rule and passed", name)
				}
			}
		})
	}
}

// conventionProblems lists the naming rules a family breaks.
func conventionProblems(name string, mf *dto.MetricFamily) []string {
	var out []string
	if !strings.HasPrefix(name, "stoker_") {
		out = append(out, "name lacks the stoker_ prefix")
	}
	if mf.GetHelp() == "" {
		out = append(out, "no help text")
	}
	if (mf.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
		out = append(out, fmt.Sprintf("type %v: counters, and only counters, end in _total", mf.GetType()))
	}
	if mf.GetType() == dto.MetricType_HISTOGRAM {
		text := strings.ToLower(name + " " + mf.GetHelp())
		for _, w := range timeWords {
			if strings.Contains(text, w) && !strings.HasSuffix(name, "_seconds") {
				out = append(out, fmt.Sprintf("histogram of time (%q in its name or help) does not end in _seconds", w))
			}
		}
	}
	for _, bad := range []string{"_ms", "_milliseconds", "_kb", "_mb", "_percent"} {
		if strings.Contains(name, bad) {
			out = append(out, "name uses "+bad+"; use base units (seconds, bytes, ratio)")
		}
	}
	return out
}
