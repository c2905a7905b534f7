package resilience

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// ---------------------------------------------------------------------------
// The stoker binary

var (
	buildOnce sync.Once
	binPath   string
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// stokerBinary builds ./cmd/stoker once per test run (or uses $STOKER_BIN)
// and returns the binary's path.
func stokerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("STOKER_BIN"); p != "" {
			binPath = p
			return
		}
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			buildErr = errors.New("go env GOMOD: not inside stoker's module")
			return
		}
		buildDir, err = os.MkdirTemp("", "stoker-resilience-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(buildDir, "stoker")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/stoker")
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/stoker: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// ---------------------------------------------------------------------------
// stoker processes

// proc is one running `stoker serve` process.
type proc struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error

	mu          sync.Mutex
	metricsAddr string
}

// startStoker runs `stoker serve --config cfg` with its metrics endpoint on
// a free loopback port and its logs in a file; extra flags follow. The
// process is killed when the test ends, and its log tail is shown when the
// test failed.
func startStoker(t testing.TB, name, cfg string, extra ...string) *proc {
	t.Helper()
	return startStokerEnv(t, name, cfg, nil, extra...)
}

// startStokerEnv is startStoker with env added to the worker's environment.
func startStokerEnv(t testing.TB, name, cfg string, env []string, extra ...string) *proc {
	t.Helper()
	bin := stokerBinary(t)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--config", cfg, "--metrics-addr", "127.0.0.1:0", "--device", "cpu"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("--- last lines of %s's log:\n%s", name, p.logTail(40))
		}
	})
	return p
}

// cleanEnv is this process's environment without NATS_* variables, which
// the stoker CLI would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// logs returns everything the process wrote so far.
func (p *proc) logs() []byte {
	b, _ := os.ReadFile(p.logPath)
	return b
}

func (p *proc) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(string(p.logs()), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logRecords parses the process's JSON log lines; other lines are skipped.
func (p *proc) logRecords() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(p.logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// countLog counts log records whose msg is msg.
func (p *proc) countLog(msg string) int {
	n := 0
	for _, r := range p.logRecords() {
		if r["msg"] == msg {
			n++
		}
	}
	return n
}

// waitReady waits until the process's /readyz answers 200: connected and
// every pipeline running.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	queuetest.WaitFor(p.t, timeout, func() error {
		if p.hasExited() {
			p.t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.waitErr, p.logTail(30))
		}
		addr := p.metricsEndpoint()
		if addr == "" {
			return errors.New(p.name + ": metrics endpoint not listening yet")
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: /readyz %d: %s", p.name, resp.StatusCode, body)
		}
		return nil
	})
}

// metricsEndpoint is the metrics address the process logged, or "".
func (p *proc) metricsEndpoint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.metricsAddr != "" {
		return p.metricsAddr
	}
	for _, r := range p.logRecords() {
		if r["msg"] == "metrics endpoint listening" {
			if a, ok := r["addr"].(string); ok {
				p.metricsAddr = a
			}
		}
	}
	return p.metricsAddr
}

// scrape returns the process's /metrics text.
func (p *proc) scrape() (string, error) {
	addr := p.metricsEndpoint()
	if addr == "" {
		return "", errors.New(p.name + ": no metrics endpoint")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric sums the samples of a metric family whose labels contain every
// `key="value"` pair given.
func (p *proc) metric(name string, labels ...string) (float64, error) {
	text, err := p.scrape()
	if err != nil {
		return 0, err
	}
	return sumMetric(text, name, labels...), nil
}

func sumMetric(text, name string, labels ...string) float64 {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits for the process to exit and returns its exit code; it fails
// the test when the process outlives timeout.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running %s after it was asked to stop", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// memory reads the process's peak (VmHWM) and current (VmRSS) resident
// memory in bytes from /proc.
func (p *proc) memory() (peak, current int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, perr := strconv.ParseInt(f[1], 10, 64)
		if perr != nil {
			continue
		}
		switch f[0] {
		case "VmHWM:":
			peak = kb << 10
		case "VmRSS:":
			current = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmHWM", p.pid())
	}
	return peak, current, nil
}

// ---------------------------------------------------------------------------
// Configuration files

// pipelineConfig is one entry of the configuration's pipelines list, as the
// YAML file spells it.
type pipelineConfig map[string]any

// textPipeline is the text pipeline with short batches and a short AckWait,
// adjusted by the pairs given ("key", value, ...).
func textPipeline(kv ...any) pipelineConfig {
	p := pipelineConfig{
		"name":     "text",
		"batch":    map[string]any{"max_items": 32, "max_wait": "20ms"},
		"ack_wait": "5s",
	}
	return p.set(kv...)
}

// imagePipeline is the image pipeline making 32×32 uint8 tensors, so that
// thousands of images fit the machine and the stream.
func imagePipeline(kv ...any) pipelineConfig {
	p := pipelineConfig{
		"name":     "image",
		"batch":    map[string]any{"max_items": 16, "max_wait": "20ms"},
		"ack_wait": "5s",
		"image":    map[string]any{"resize": 32, "crop": 32, "dtype": "uint8"},
	}
	return p.set(kv...)
}

func (p pipelineConfig) set(kv ...any) pipelineConfig {
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i].(string)] = kv[i+1]
	}
	return p
}

// writeConfig writes a configuration file for a worker of the server at url
// running the given pipelines, and returns its path. top adds top-level
// keys (drain_timeout, nats settings).
func writeConfig(t testing.TB, url string, top map[string]any, pipelines ...pipelineConfig) string {
	t.Helper()
	doc := map[string]any{
		"nats":          map[string]any{"url": url},
		"drain_timeout": "20s",
		"pipelines":     pipelines,
	}
	for k, v := range top {
		doc[k] = v
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stoker.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ---------------------------------------------------------------------------
// NATS servers

// broker is a single JetStream server on a fixed loopback port whose store
// outlives a restart.
type broker struct {
	t    testing.TB
	opts *server.Options
	srv  *server.Server
}

// startBroker starts a JetStream server on a free port with its store in a
// temporary directory; mods adjust its options.
func startBroker(t testing.TB, mods ...queuetest.ServerOption) *broker {
	t.Helper()
	o := &server.Options{
		Host:       "127.0.0.1",
		Port:       queuetest.FreePorts(t, 1)[0],
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 8 << 20,
		MaxPending: 64 << 20,
	}
	for _, f := range mods {
		f(o)
	}
	b := &broker{t: t, opts: o}
	t.Cleanup(b.stop)
	retry := false
	queuetest.RetryPortBusy(t, func() error {
		if retry {
			b.opts.Port = queuetest.FreePorts(t, 1)[0]
		}
		retry = true
		return b.start()
	})
	return b
}

func (b *broker) start() error {
	s, err := queuetest.Start(b.opts.Clone(), 30*time.Second)
	if err != nil {
		return err
	}
	b.srv = s
	return nil
}

// url is the server's client URL (the same across restarts).
func (b *broker) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", b.opts.Port) }

// stop shuts the server down; stopping a stopped server does nothing.
func (b *broker) stop() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		b.srv = nil
	}
}

// restart starts the stopped server again with the same port and store.
func (b *broker) restart() {
	b.t.Helper()
	if err := b.start(); err != nil {
		b.t.Fatal(err)
	}
}

// client connects a test client that reconnects forever.
func client(t testing.TB, url string, opts ...func(*queue.ConnOptions)) *queue.Conn {
	t.Helper()
	return queuetest.Connect(t, url, opts...)
}

// ---------------------------------------------------------------------------
// Items

// item is one raw input to publish.
type item struct {
	subject string
	id      string // Nats-Msg-Id, also the item id stoker reports
	data    []byte
	hdr     nats.Header // extra headers
}

// textItems makes n distinct short texts on raw.text.<sub>.
func textItems(prefix string, n int) []item {
	items := make([]item, n)
	for i := range items {
		items[i] = item{
			subject: "raw.text.load",
			id:      fmt.Sprintf("%s-text-%06d", prefix, i),
			data:    fmt.Appendf(nil, "item %d of %d: the quick brown fox jumps over the lazy dog near %s", i, n, prefix),
		}
	}
	return items
}

// imageItems makes n JPEG items of about w×h pixels (8 distinct pictures
// reused).
func imageItems(t testing.TB, prefix string, n, w, h int) []item {
	t.Helper()
	var pics [][]byte
	for k := range 8 {
		img := image.NewRGBA(image.Rect(0, 0, w+k, h))
		for y := range h {
			for x := range w + k {
				img.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 6), uint8(k * 30), 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
			t.Fatal(err)
		}
		pics = append(pics, buf.Bytes())
	}
	items := make([]item, n)
	for i := range items {
		items[i] = item{subject: "raw.image.load", id: fmt.Sprintf("%s-image-%06d", prefix, i), data: pics[i%len(pics)]}
	}
	return items
}

func ids(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// publishAll publishes items asynchronously and waits for every
// acknowledgement; a publish the stream refuses fails the test.
func publishAll(t testing.TB, c *queue.Conn, items []item) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// At most 256 messages (the connection's PublishAsyncMaxPending) or
	// 16 MiB await acknowledgement at once: more and the server answers
	// "429 too many requests".
	const window, windowBytes = 256, 16 << 20
	pending := make([]*queue.Pending, 0, window)
	pendingBytes := 0
	flush := func() {
		for _, pa := range pending {
			if _, err := pa.Wait(ctx); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		pending, pendingBytes = pending[:0], 0
	}
	for _, it := range items {
		hdr := nats.Header{}
		for k, v := range it.hdr {
			hdr[k] = v
		}
		if it.id != "" {
			hdr.Set(nats.MsgIdHdr, it.id)
		}
		pa, err := c.PublishAsync(it.subject, it.data, hdr)
		if err != nil {
			t.Fatalf("publish %s: %v", it.id, err)
		}
		pending = append(pending, pa)
		pendingBytes += len(it.data)
		if len(pending) == window || pendingBytes >= windowBytes {
			flush()
		}
	}
	flush()
}

// ensureStreams creates a pipeline's input, output and dead-letter streams
// the way stoker would, with the given replicas, before any worker starts.
func ensureStreams(t testing.TB, c *queue.Conn, replicas int, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range names {
		up := strings.ToUpper(n)
		for _, s := range []queue.StreamSpec{
			{Name: "RAW_" + up, Subjects: []string{"raw." + n + ".>"}, Replicas: replicas},
			{Name: "TENSORS_" + up, Subjects: []string{"tensors." + n}, Replicas: replicas},
			{Name: "DLQ_" + up, Subjects: []string{"dlq." + n}, Replicas: replicas},
		} {
			if _, err := c.EnsureStream(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Counting what arrived

// tally reads a pipeline's output and dead-letter streams incrementally and
// counts, per item id, the tensors and dead letters seen.
type tally struct {
	t        testing.TB
	js       jetstream.JetStream
	pipeline string
	out, dlq string // stream names

	nextOut, nextDLQ uint64
	outMsgs          int
	rows             map[string]int         // item id → tensor rows published for it
	dead             map[string]int         // item id → dead letters
	deadHdr          map[string]nats.Header // item id → its last dead letter's headers
}

func newTally(t testing.TB, c *queue.Conn, pipeline string) *tally {
	up := strings.ToUpper(pipeline)
	return &tally{
		t: t, js: c.JetStream(), pipeline: pipeline, out: "TENSORS_" + up, dlq: "DLQ_" + up,
		nextOut: 1, nextDLQ: 1,
		rows: map[string]int{}, dead: map[string]int{}, deadHdr: map[string]nats.Header{},
	}
}

// poll reads what was added to both streams since the last poll.
func (ty *tally) poll() error {
	if err := ty.read(ty.out, &ty.nextOut, ty.addOutput); err != nil {
		return err
	}
	return ty.read(ty.dlq, &ty.nextDLQ, func(m *jetstream.RawStreamMsg) error {
		id := m.Header.Get("Stoker-Item-Id")
		if id == "" {
			return fmt.Errorf("dead letter %d has no Stoker-Item-Id header", m.Sequence)
		}
		ty.dead[id]++
		ty.deadHdr[id] = m.Header
		return nil
	})
}

func (ty *tally) read(stream string, next *uint64, use func(*jetstream.RawStreamMsg) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := ty.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	for ; *next <= last; *next++ {
		m, err := st.GetMsg(ctx, *next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stream %s message %d: %w", stream, *next, err)
		}
		if err := use(m); err != nil {
			ty.t.Fatal(err) // a malformed output is a failure, not a wait
		}
	}
	return nil
}

func (ty *tally) addOutput(m *jetstream.RawStreamMsg) error {
	ts, md, err := safetensors.Decode(m.Data)
	if err != nil {
		return fmt.Errorf("output message %d of %s: %w", m.Sequence, ty.out, err)
	}
	var got []string
	if err := json.Unmarshal([]byte(md["ids"]), &got); err != nil {
		return fmt.Errorf("output message %d of %s: ids %q: %w", m.Sequence, ty.out, md["ids"], err)
	}
	if md["pipeline"] != ty.pipeline {
		return fmt.Errorf("output message %d of %s: pipeline %q, want %q", m.Sequence, ty.out, md["pipeline"], ty.pipeline)
	}
	for _, tt := range ts {
		if len(tt.Shape) == 0 || tt.Shape[0] != len(got) {
			return fmt.Errorf("output message %d of %s: tensor %s has shape %v for %d ids", m.Sequence, ty.out, tt.Name, tt.Shape, len(got))
		}
	}
	ty.outMsgs++
	for _, id := range got {
		ty.rows[id]++
	}
	return nil
}

// waitAll polls until every id has a tensor or a dead letter.
func (ty *tally) waitAll(timeout time.Duration, want []string) {
	ty.t.Helper()
	queuetest.WaitFor(ty.t, timeout, func() error {
		if err := ty.poll(); err != nil {
			return err
		}
		missing := 0
		example := ""
		for _, id := range want {
			if ty.rows[id] == 0 && ty.dead[id] == 0 {
				missing++
				example = id
			}
		}
		if missing > 0 {
			return fmt.Errorf("pipeline %s: %d of %d items have neither a tensor nor a dead letter (e.g. %s)", ty.pipeline, missing, len(want), example)
		}
		return nil
	})
}

// counts summarises what arrived for the given ids.
type counts struct {
	Published, Arrived, Duplicates, DeadLettered, Unexpected int
}

func (c counts) String() string {
	return fmt.Sprintf("published %d, arrived %d, duplicates %d, dead-lettered %d", c.Published, c.Arrived, c.Duplicates, c.DeadLettered)
}

func (ty *tally) count(want []string) counts {
	c := counts{Published: len(want)}
	wanted := make(map[string]bool, len(want))
	for _, id := range want {
		wanted[id] = true
		if n := ty.rows[id]; n > 0 {
			c.Arrived++
			c.Duplicates += n - 1
		}
		if ty.dead[id] > 0 {
			c.DeadLettered++
		}
	}
	for id := range ty.rows {
		if !wanted[id] {
			c.Unexpected++
		}
	}
	return c
}

// consumerInfo reads a pipeline consumer's state.
func consumerInfo(t testing.TB, c *queue.Conn, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := c.JetStream().Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}
