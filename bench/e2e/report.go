package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stoker-ml/stoker/bench"
)

// Target is the fraction of min(stage, broker ceiling) the service should
// reach (issue 7).
const Target = 0.80

// Report is one `stoker bench e2e` run with its context.
type Report struct {
	Command string        `json:"command"`
	Date    time.Time     `json:"date"`
	Machine bench.Machine `json:"machine"`
	Inputs  bench.Inputs  `json:"inputs"`
	Result  Result        `json:"result"`
}

// WriteJSON writes the report as one JSON object on one line.
func (r *Report) WriteJSON(w io.Writer) error {
	if err := json.NewEncoder(w).Encode(r); err != nil {
		return fmt.Errorf("writing e2e JSON: %w", err)
	}
	return nil
}

func verdict(f float64) string {
	if f >= Target {
		return fmt.Sprintf("target ≥ %.0f%% met", Target*100)
	}
	return fmt.Sprintf("target ≥ %.0f%% missed by %.1f points", Target*100, (Target-f)*100)
}

func latencyLine(l bench.Latency) string {
	return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms", l.P50, l.P95, l.P99, l.Max)
}

// lines is the summary shared by the table and the Markdown.
func (r *Report) lines() [][2]string {
	x := r.Result
	out := [][2]string{
		{"stage alone (no NATS)", fmt.Sprintf("%.1f items/s (batch %d; larger of %s, before and after)", x.StageItemsPerS, x.StageBatch, floats(x.StageRuns))},
		{"broker publish-only", fmt.Sprintf("%.1f items/s", x.BrokerPublishPerS)},
		{"broker consume+ack-only", fmt.Sprintf("%.1f items/s", x.BrokerConsumePerS)},
		{"broker ceiling", fmt.Sprintf("%.1f items/s = min(publish, consume)", x.BrokerCeilingPerS)},
		{"broker, cores shared", fmt.Sprintf("%.1f items/s = 1/(1/publish + 1/consume); stoker is %.1f%% of it", x.BrokerSharedPerS, 100*x.Full.ItemsPerS/max(x.BrokerSharedPerS, 1e-9))},
		{"broker, tensor messages", fmt.Sprintf("%.1f items/s publishing the outputs alone (mean %.0f bytes per item)", x.BrokerOutputPerS, float64(x.Full.OutputBytes)/float64(max(x.Items, 1)))},
		{"broker, all work shared", fmt.Sprintf("%.1f items/s = 1/(1/publish + 1/consume + 1/outputs); stoker is %.1f%% of it", x.BrokerAllPerS, 100*x.Full.ItemsPerS/max(x.BrokerAllPerS, 1e-9))},
		{"stoker end to end", fmt.Sprintf("%.1f items/s = %.1f%% of min(stage, broker) = %.1f items/s (%s)", x.Full.ItemsPerS, x.Fraction*100, x.BoundPerS, verdict(x.Fraction))},
		{"  latency at full speed", latencyLine(x.Full.Latency)},
		{"  arrived", fmt.Sprintf("%d tensor rows + %d dead letters of %d, in %d output messages (%.1f MB)", x.Full.Tensors, x.Full.DeadLetters, x.Items, x.Full.OutputMsgs, float64(x.Full.OutputBytes)/1e6)},
	}
	if p := x.Paced; p != nil {
		out = append(out,
			[2]string{fmt.Sprintf("paced at %.1f items/s", p.RatePerS), fmt.Sprintf("%.1f items/s delivered", p.ItemsPerS)},
			[2]string{"  latency when paced", latencyLine(p.Latency)},
		)
	}
	return out
}

// WriteTable writes the result as aligned lines for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	x := r.Result
	fmt.Fprintf(w, "pipeline %s on %s, %d worker(s), %d items per phase (mean %d bytes), %s server\n",
		x.Pipeline, x.Device, x.Workers, x.Items, x.Payload, x.Server)
	for _, l := range r.lines() {
		fmt.Fprintf(w, "  %-26s %s\n", l[0], l[1])
	}
	return nil
}

// WriteMarkdown writes a short summary naming the command, commit and date.
func (r *Report) WriteMarkdown(w io.Writer) error {
	x, m := r.Result, r.Machine
	fmt.Fprintf(w, "# stoker bench e2e: %s pipeline on %s\n\n", x.Pipeline, m.CPU)
	fmt.Fprintf(w, "- Command: `%s`\n", r.Command)
	dirty := ""
	if m.Modified {
		dirty = " with uncommitted changes"
	}
	fmt.Fprintf(w, "- Commit: %s%s (stoker %s, %s, %s)\n", m.Commit, dirty, m.Stoker, m.Build, m.GoVersion)
	fmt.Fprintf(w, "- Date: %s\n", r.Date.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- Machine: %s, %d cores, %s; load average %s when the report was written\n", m.CPU, m.Cores, m.OS, m.LoadAvg)
	fmt.Fprintf(w, "- Setup: device %s, %d worker(s) in process, %s NATS server, %d items per phase, inputs %s (%d items, mean %d bytes)\n\n",
		x.Device, x.Workers, x.Server, x.Items, r.Inputs.Source, r.Inputs.Items, x.Payload)
	fmt.Fprintln(w, "| measure | result |")
	fmt.Fprintln(w, "|---|---|")
	for _, l := range r.lines() {
		fmt.Fprintf(w, "| %s | %s |\n", l[0], l[1])
	}
	return nil
}

func floats(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.1f", x))
	}
	return strings.Join(parts, " and ")
}
