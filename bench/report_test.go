package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	util := 87.5
	return &Report{
		Command: "stoker bench --pipeline image", Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Machine:  Machine{CPU: "Test CPU", Cores: 2, Commit: "abc123", Stoker: "dev", Build: "cpu build", GPUNote: "NVML unavailable: test"},
		Pipeline: "image",
		Inputs:   Inputs{Source: "bundled samples", Items: 7, Bytes: 600000},
		Settings: Settings{WarmupS: 1, SecondsS: 5, Windows: 5},
		Rows: []Row{
			{Device: "cpu", Pipeline: "image", Batch: 1, Threads: 2, ItemsPerS: 150, MBPerS: 15, ItemsPerSStats: Summary{Median: 150, Min: 140, Max: 160, Spread: 6.7, N: 5},
				Latency: Latency{P50: 6, P95: 8, P99: 9, Mean: 6.5, N: 700}, Stages: []Stage{{Name: "decode", MeanMS: 4, Share: 61.5}, {Name: "other", MeanMS: 2.5, Share: 38.5}}},
			{Device: "cpu", Pipeline: "image", Batch: 64, Threads: 2, ItemsPerS: 210, MBPerS: 21, ItemsPerSStats: Summary{Median: 210, Min: 200, Max: 220, Spread: 4.8, N: 5},
				Latency: Latency{P50: 300, P95: 320, P99: 330, Mean: 305, N: 16}, Stages: []Stage{{Name: "other", MeanMS: 305, Share: 100}}},
			{Device: "cuda", Pipeline: "image", Batch: 1, Threads: 2, ItemsPerS: 900, ItemsPerSStats: Summary{Median: 900, Min: 900, Max: 900, N: 5},
				SpeedupVsCPU: 6, GPUUtilPct: &util, Stages: []Stage{{Name: "decode", Share: 50}, {Name: "kernel", Share: 30}, {Name: "other", Share: 20}}},
			{Device: "cuda", Pipeline: "image", Batch: 64, Threads: 2, Missing: "no GPU: stoker was built without CUDA"},
		},
	}
}

func TestWriteJSONLinesParse(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := WriteJSONLines(&buf, r); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d does not parse: %v: %s", n+1, err, sc.Text())
		}
		for _, k := range []string{"device", "pipeline", "items_per_s", "batch"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", n+1, k, sc.Text())
			}
		}
		if m["device"] != r.Rows[n].Device || m["items_per_s"] != r.Rows[n].ItemsPerS {
			t.Errorf("line %d: %v, want row %+v", n+1, m, r.Rows[n])
		}
		n++
	}
	if n != len(r.Rows) {
		t.Errorf("%d lines, want %d", n, len(r.Rows))
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", back, r)
	}
}

func TestWriteTableAndMarkdown(t *testing.T) {
	r := sampleReport()
	var table, md bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarkdown(&md, r, "bench.png"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"items/s", "6.00×", "88%", "no figures for cuda: no GPU: stoker was built without CUDA", "decode 62% · other 38%"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, want := range []string{"`stoker bench --pipeline image`", "abc123", "2026-11-25T12:00:00Z", "Test CPU", "GPU: none (NVML unavailable: test)", "![items/s against batch size](bench.png)", "no GPU: stoker was built without CUDA"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	// The table's columns line up: every data line is as wide as the header.
	lines := strings.Split(table.String(), "\n")
	for _, l := range lines[1:5] {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("unaligned table line %q (header %q)", l, lines[0])
		}
	}
}

func TestWritePlot(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	pngPath := filepath.Join(dir, "bench.png")
	if err := WritePlot(pngPath, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 200 || len(data) < 10000 {
		t.Errorf("PNG %dx%d, %d bytes: too small to hold two plots", b.Dx(), b.Dy(), len(data))
	}
	svgPath := filepath.Join(dir, "bench.svg")
	if err := WritePlot(svgPath, r); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("cuda")) {
		t.Errorf("SVG lacks <svg or the cuda legend (%d bytes)", len(svg))
	}
	if err := WritePlot(filepath.Join(dir, "x.gif"), r); err == nil {
		t.Error("a .gif plot was accepted")
	}
	none := &Report{Rows: []Row{{Device: "cuda", Missing: "no GPU"}}}
	if err := WritePlot(filepath.Join(dir, "none.png"), none); !errors.Is(err, ErrNothingToPlot) {
		t.Errorf("plot with no measured row: err = %v, want ErrNothingToPlot", err)
	}
}

func TestCPUModel(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"intel", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t: fpu\n", "Intel(R) Xeon(R) CPU @ 2.20GHz"},
		{"no model name (arm)", "processor\t: 0\nBogoMIPS\t: 50.00\n", "unknown (no model name in /proc/cpuinfo)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuModelFrom([]byte(tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	m := DescribeMachine("v1", "abc", "cpu build")
	if m.Cores < 1 || m.Stoker != "v1" || m.Commit != "abc" || m.GoVersion == "" {
		t.Errorf("machine %+v", m)
	}
	if _, err := NewGPUSampler(); m.GPU == "" && !errors.Is(err, ErrNVMLUnavailable) {
		t.Errorf("no GPU, and NewGPUSampler's error %v does not wrap ErrNVMLUnavailable", err)
	}
	if m.GPU == "" && !strings.HasPrefix(m.GPUNote, "NVML unavailable") {
		t.Errorf("no GPU and note %q, want one starting with \"NVML unavailable\"", m.GPUNote)
	}
}

func TestMsFormat(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{"zero", 0, "0.00"},
		{"microseconds keep three digits", 0.0035412, "0.00354"},
		{"milliseconds get two decimals", 12.345, "12.35"},
		{"boundary", 0.1, "0.10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ms(tc.in); got != tc.want {
				t.Errorf("ms(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
