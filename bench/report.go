package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one `stoker bench` run: what was asked, on which machine, and
// a row per device and batch size.
type Report struct {
	Command  string    `json:"command"` // the command line that produced it
	Date     time.Time `json:"date"`
	Machine  Machine   `json:"machine"`
	Pipeline string    `json:"pipeline"`
	Inputs   Inputs    `json:"inputs"`
	Settings Settings  `json:"settings"`
	Rows     []Row     `json:"rows"`
}

// Inputs describes the items measured.
type Inputs struct {
	Source string `json:"source"` // "bundled samples", "synthetic 640x480 jpeg", or the paths given
	Items  int    `json:"items"`
	Bytes  int64  `json:"bytes"`
}

// Settings are the measurement settings used.
type Settings struct {
	WarmupS  float64 `json:"warmup_s"`
	SecondsS float64 `json:"seconds_per_row"`
	Windows  int     `json:"windows"`
}

// WriteJSONLines writes one JSON object per row, one per line.
func WriteJSONLines(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	for _, row := range r.Rows {
		if err := enc.Encode(row); err != nil {
			return fmt.Errorf("writing JSON lines: %w", err)
		}
	}
	return nil
}

// WriteJSON writes the whole report as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	return &r, nil
}

// stageSummary reads "decode 61% · other 39%".
func stageSummary(st []Stage) string {
	if len(st) == 1 && st[0].Name == StageOther {
		return "not split (the processor reports no stage timings)"
	}
	var parts []string
	for _, s := range st {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", s.Name, s.Share))
	}
	return strings.Join(parts, " · ")
}

func speedup(r Row) string {
	if r.SpeedupVsCPU == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", r.SpeedupVsCPU)
}

func util(r Row) string {
	switch {
	case r.GPUUtilPct != nil:
		return fmt.Sprintf("%.0f%%", *r.GPUUtilPct)
	case r.GPUUtilErr != "":
		return "n/a"
	}
	return "-"
}

// WriteTable writes the rows as an aligned table for a terminal, then the
// reasons of missing rows.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "device\tbatch\tthreads\titems/s\t±\tMB/s\tp50 ms\tp95 ms\tp99 ms\tspeed-up\tGPU util\t")
	var notes []string
	for _, row := range r.Rows {
		if row.Missing != "" {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t\t-\t-\t-\t-\t-\t-\t\n", row.Device, row.Batch, row.Threads)
			note := row.Device + ": " + row.Missing
			if len(notes) == 0 || notes[len(notes)-1] != note {
				notes = append(notes, note)
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f%%\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n",
			row.Device, row.Batch, row.Threads, row.ItemsPerS, row.ItemsPerSStats.Spread, row.MBPerS,
			ms(row.Latency.P50), ms(row.Latency.P95), ms(row.Latency.P99), speedup(row), util(row))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "time per batch by stage (mean):")
	for _, row := range r.Rows {
		if row.Missing == "" {
			fmt.Fprintf(w, "  %s batch %d: %s ms = %s\n", row.Device, row.Batch, ms(row.Latency.Mean), stageSummary(row.Stages))
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "no figures for %s\n", n)
	}
	_, err := fmt.Fprintf(w, "items/s and MB/s: median of %d windows (± is half the range); MB/s counts raw input bytes.\n", r.Settings.Windows)
	return err
}

// WriteMarkdown writes a short summary: the command, commit, date, machine,
// the table, and the plot when plotFile is not empty.
func WriteMarkdown(w io.Writer, r *Report, plotFile string) error {
	m := r.Machine
	fmt.Fprintf(w, "# stoker bench: %s pipeline on %s\n\n", r.Pipeline, m.CPU)
	fmt.Fprintf(w, "- Command: `%s`\n", r.Command)
	dirty := ""
	if m.Modified {
		dirty = " with uncommitted changes"
	}
	fmt.Fprintf(w, "- Commit: %s%s (stoker %s, %s, %s)\n", m.Commit, dirty, m.Stoker, m.Build, m.GoVersion)
	fmt.Fprintf(w, "- Date: %s\n", r.Date.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- Machine: %s, %d cores, %s; load average %s when the report was written\n", m.CPU, m.Cores, m.OS, m.LoadAvg)
	if m.GPU != "" {
		fmt.Fprintf(w, "- GPU: %s, driver %s\n", m.GPU, m.Driver)
	} else {
		fmt.Fprintf(w, "- GPU: none (%s)\n", m.GPUNote)
	}
	fmt.Fprintf(w, "- Inputs: %s, %d items, %d bytes; warm-up %gs, %gs measured per row in %d windows\n\n",
		r.Inputs.Source, r.Inputs.Items, r.Inputs.Bytes, r.Settings.WarmupS, r.Settings.SecondsS, r.Settings.Windows)
	fmt.Fprintln(w, "| device | batch | threads | items/s (median ± spread) | MB/s | p50 ms | p95 ms | p99 ms | stages (share of batch time) | speed-up vs CPU | GPU util |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
	for _, row := range r.Rows {
		if row.Missing != "" {
			fmt.Fprintf(w, "| %s | %d | %d | — (%s) | | | | | | | |\n", row.Device, row.Batch, row.Threads, row.Missing)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.1f ± %.1f%% | %.2f | %s | %s | %s | %s | %s | %s |\n",
			row.Device, row.Batch, row.Threads, row.ItemsPerS, row.ItemsPerSStats.Spread, row.MBPerS,
			ms(row.Latency.P50), ms(row.Latency.P95), ms(row.Latency.P99), stageSummary(row.Stages), speedup(row), util(row))
	}
	if plotFile != "" {
		fmt.Fprintf(w, "\n![items/s against batch size](%s)\n", plotFile)
	}
	return nil
}

// ms formats milliseconds with two decimals, or three significant digits
// below 0.1 ms so that microsecond batches do not read 0.00.
func ms(v float64) string {
	if v != 0 && v < 0.1 {
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.2f", v)
}
