package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/queue"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[--samples DIR] [--device auto|cpu|cuda] [--timeout D]")
	samples := fs.String("samples", "bench/samples", "directory with images/ and texts.txt")
	device := fs.String("device", "auto", "auto, cpu or cuda")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up when the tensors have not all arrived by then")
	if err := parse(fs, args); err != nil {
		return err
	}
	inputs, err := demoInputs(*samples)
	if err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "stoker-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)

	cfg := config.Default()
	cfg.NATS = config.NATS{}
	cfg.Embedded = config.Embedded{Listen: "127.0.0.1:0", DataDir: dataDir}
	cfg.Metrics.Addr = "127.0.0.1:0"
	cfg.Device = *device
	// The demo's output is its table: only warnings and errors are logged.
	quiet := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := service.New(cfg, service.Options{Logger: quiet})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		svc.Drain()
		<-done
	}()
	if err := waitReady(ctx, svc, done); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.ConnOptions{URL: svc.URL(), Name: "stoker-demo"})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	sent := map[string]map[string]time.Time{} // pipeline → item id → publish time
	for _, in := range inputs {
		if sent[in.pipeline] == nil {
			sent[in.pipeline] = map[string]time.Time{}
		}
		hdr := nats.Header{}
		hdr.Set(nats.MsgIdHdr, in.id)
		sent[in.pipeline][in.id] = time.Now()
		if _, err := conn.Publish(ctx, in.subject, in.data, hdr); err != nil {
			return err
		}
	}
	var rows []demoRow
	for _, p := range cfg.Pipelines {
		r, err := collect(ctx, conn, p, sent[p.Name])
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	fmt.Fprintf(e.stdout, "stoker demo: embedded NATS at %s, device %s, metrics at http://%s/metrics\n\n", svc.URL(), svc.Device(), svc.MetricsAddr())
	printDemo(e, rows)
	return nil
}

type demoInput struct {
	pipeline, subject, id string
	data                  []byte
}

// demoInputs reads the bundled images (one item per file) and texts (one
// item per line), with the ids `stoker publish` would give them.
func demoInputs(dir string) ([]demoInput, error) {
	var out []demoInput
	imgs, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("samples: %w (run the demo from the repository root or pass --samples)", err)
	}
	for _, f := range imgs {
		b, err := os.ReadFile(filepath.Join(dir, "images", f.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, demoInput{pipeline: "image", subject: "raw.image.samples", id: f.Name(), data: b})
	}
	b, err := os.ReadFile(filepath.Join(dir, "texts.txt"))
	if err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		out = append(out, demoInput{pipeline: "text", subject: "raw.text.samples", id: fmt.Sprintf("texts.txt:%d", i), data: []byte(line)})
	}
	return out, nil
}

func waitReady(ctx context.Context, svc *service.Service, done <-chan error) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(30 * time.Second)
	for svc.Ready() != nil {
		select {
		case err := <-done:
			return fmt.Errorf("service stopped before it was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("service not ready within 30s: %w", svc.Ready())
		case <-t.C:
		}
	}
	return nil
}

type demoRow struct {
	pipeline    string
	items, dead int
	messages    int
	tensors     string
	span        time.Duration
	latencies   []time.Duration
	deadReasons []string
}

// collect reads a pipeline's outputs and dead letters until every item
// sent is accounted for.
func collect(ctx context.Context, conn *queue.Conn, p config.Pipeline, sent map[string]time.Time) (demoRow, error) {
	row := demoRow{pipeline: p.Name}
	var mu sync.Mutex
	seen := map[string]bool{}
	first := time.Now()
	for _, t := range sent {
		if t.Before(first) {
			first = t
		}
	}
	var last time.Time
	all := make(chan struct{})
	var closeOnce sync.Once
	account := func(id string) {
		if !seen[id] {
			seen[id] = true
		}
		if len(seen) == len(sent) {
			closeOnce.Do(func() { close(all) })
		}
	}
	js := conn.JetStream()
	out, err := js.OrderedConsumer(ctx, p.OutputStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return row, err
	}
	cc1, err := out.Consume(func(m jetstream.Msg) {
		ts, md, err := safetensors.Decode(m.Data())
		if err != nil {
			return
		}
		var ids []string
		_ = json.Unmarshal([]byte(md["ids"]), &ids)
		meta, _ := m.Metadata()
		mu.Lock()
		defer mu.Unlock()
		row.messages++
		row.items += len(ids)
		var desc []string
		for _, t := range ts {
			desc = append(desc, fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape[1:]))
		}
		row.tensors = strings.Join(desc, "; ")
		for _, id := range ids {
			if at, ok := sent[id]; ok && meta != nil {
				row.latencies = append(row.latencies, meta.Timestamp.Sub(at))
			}
			account(id)
		}
		if meta != nil && meta.Timestamp.After(last) {
			last = meta.Timestamp
		}
	})
	if err != nil {
		return row, err
	}
	defer cc1.Stop()
	dlq, err := js.OrderedConsumer(ctx, p.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return row, err
	}
	cc2, err := dlq.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		id := m.Headers().Get("Stoker-Item-Id")
		row.dead++
		row.deadReasons = append(row.deadReasons, id+": "+m.Headers().Get("Stoker-Error"))
		account(id)
	})
	if err != nil {
		return row, err
	}
	defer cc2.Stop()
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return row, fmt.Errorf("pipeline %s: %d of %d items accounted for: %w", p.Name, len(seen), len(sent), ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	row.span = last.Sub(first)
	return row, nil
}

func printDemo(e *env, rows []demoRow) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tITEMS\tDEAD LETTERS\tMESSAGES\tTENSORS (per item)\tITEMS/S\tP50\tP99")
	for _, r := range rows {
		rate := "-"
		if r.span > 0 {
			rate = fmt.Sprintf("%.1f", float64(r.items)/r.span.Seconds())
		}
		p50, p99 := percentile(r.latencies, 0.50), percentile(r.latencies, 0.99)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.pipeline, r.items, r.dead, r.messages, r.tensors, rate, p50, p99)
	}
	tw.Flush()
	for _, r := range rows {
		for _, d := range r.deadReasons {
			fmt.Fprintf(e.stdout, "dead letter (%s) %s\n", r.pipeline, d)
		}
	}
}

// percentile of durations (nearest rank), formatted, or "-" when empty.
func percentile(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(q*float64(len(s))+0.5) - 1
	k = min(max(k, 0), len(s)-1)
	return s[k].Round(100 * time.Microsecond).String()
}
