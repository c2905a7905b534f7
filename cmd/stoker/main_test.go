package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// The test binary doubles as the stoker binary: with STOKER_MAIN=1 it runs
// main, so tests start real stoker processes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("STOKER_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// stoker returns a command running this binary as stoker with args.
func stoker(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "STOKER_MAIN=1", "NATS_URL=")
	return cmd
}

func TestEveryVerbHasHelp(t *testing.T) {
	for _, v := range verbs {
		t.Run(v.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{v.name, "--help"}, &out, &errb)
			if code != 0 {
				t.Fatalf("stoker %s --help exited %d: %s", v.name, code, errb.String())
			}
			if !strings.Contains(errb.String(), "usage: stoker "+v.name) {
				t.Fatalf("stoker %s --help printed no usage line: %q", v.name, errb.String())
			}
		})
	}
}

func TestUnknownVerbAndBadFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown verb "frobnicate"`) {
		t.Fatalf("unknown verb: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"serve", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d, %q", code, errb.String())
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "stoker ") || !strings.Contains(out.String(), buildFlavour) {
		t.Fatalf("version: exit %d, %q %q", code, out.String(), errb.String())
	}
}

func TestServeRefusesCUDAOnCPUBuild(t *testing.T) {
	if buildFlavour != "cpu build" {
		t.Skip("cuda build")
	}
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--device", "cuda", "--nats", "nats://127.0.0.1:1"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "-tags cuda") {
		t.Fatalf("serve --device cuda on a CPU build: exit %d, %q", code, errb.String())
	}
}

// stoker preprocess runs on the configuration's device unless --device
// says otherwise, as serve does.
func TestPreprocessTakesTheConfigurationsDevice(t *testing.T) {
	if buildFlavour != "cpu build" {
		t.Skip("cuda build")
	}
	dir := t.TempDir()
	cfg, in := filepath.Join(dir, "cuda.yaml"), filepath.Join(dir, "in.txt")
	os.WriteFile(cfg, []byte("device: cuda\npipelines:\n  - name: text\n"), 0o644)
	os.WriteFile(in, []byte("a short document\n"), 0o644)
	args := []string{"preprocess", "--pipeline", "text", "--config", cfg, "--lines", "--out", filepath.Join(dir, "out.safetensors"), in}
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-tags cuda") {
		t.Fatalf("preprocess with device: cuda in the configuration, on a CPU build: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run(append(args[:1:1], append([]string{"--device", "cpu"}, args[1:]...)...), &out, &errb); code != 0 {
		t.Fatalf("preprocess --device cpu: exit %d, %q", code, errb.String())
	}
}

func TestServeRefusesInvalidConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("pipelines:\n  - name: text\n    batch: {max_items: 0}\n"), 0o644)
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--config", cfg}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "max_items") {
		t.Fatalf("invalid config: exit %d, %q", code, errb.String())
	}
}

// TestServeDrainsOnSIGTERM runs a real stoker process, stops it with SIGTERM
// in the middle of a run, and checks that it exits 0 and that no item is
// lost: every item is either published or still waiting in the consumer,
// from where a second process finishes them.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	srv := queuetest.RunServer(t)
	url := srv.ClientURL()
	cfg := filepath.Join(t.TempDir(), "stoker.yaml")
	os.WriteFile(cfg, []byte(`pipelines:
  - name: text
    batch: {max_items: 16, max_wait: 5ms}
    ack_wait: 5s
`), 0o644)
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := stoker(t, "serve", "--nats", url, "--config", cfg, "--metrics-addr", "off")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, &logs
	}
	c := queuetest.Connect(t, url)
	ctx := context.Background()
	first, logs := start()
	queuetest.WaitFor(t, 20*time.Second, func() error {
		_, err := c.JetStream().Stream(ctx, "RAW_TEXT")
		return err
	})
	const n = 3000
	for i := 0; i < n; i++ {
		hdr := nats.Header{}
		hdr.Set(nats.MsgIdHdr, fmt.Sprintf("doc-%d", i))
		pa, err := c.PublishAsync("raw.text.t", []byte(fmt.Sprintf("document number %d with a few words", i)), hdr)
		if err != nil {
			t.Fatal(err)
		}
		if i == n-1 {
			if _, err := pa.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Stop the worker once it is under way, well before it is done.
	queuetest.WaitFor(t, 20*time.Second, func() error {
		if got := len(outputIDs(t, c)); got == 0 {
			return fmt.Errorf("no output yet")
		}
		return nil
	})
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("stoker serve after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("stoker serve did not exit within 30s of SIGTERM\n%s", logs)
	}
	afterFirst := len(outputIDs(t, c))
	t.Logf("first process published %d of %d items before draining", afterFirst, n)
	second, _ := start()
	queuetest.WaitFor(t, 60*time.Second, func() error {
		if got := len(outputIDs(t, c)); got < n {
			return fmt.Errorf("%d of %d items published", got, n)
		}
		return nil
	})
	_ = second.Process.Signal(syscall.SIGTERM)
	ids := outputIDs(t, c)
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("item %s published twice after a graceful drain", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct items published, want %d", len(seen), n)
	}
}

// outputIDs lists the item ids of every message in TENSORS_TEXT.
func outputIDs(t *testing.T, c *queue.Conn) []string {
	t.Helper()
	ctx := context.Background()
	st, err := c.JetStream().Stream(ctx, "TENSORS_TEXT")
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		_, md, err := safetensors.Decode(m.Data)
		if err != nil {
			t.Fatalf("output %d: %v", seq, err)
		}
		var got []string
		if err := json.Unmarshal([]byte(md["ids"]), &got); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

// TestDemoPrintsSummary runs the demo on the CPU, and in a cuda build on
// the GPU (or kernels/fakecuda standing in for it: make test-cuda-fake).
func TestDemoPrintsSummary(t *testing.T) {
	device := "cpu"
	if buildFlavour == "cuda build" {
		device = "cuda"
	}
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--samples", "../../bench/samples", "--device", device}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exited %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), ", device "+device+",") {
		t.Errorf("demo did not run on %s:\n%s", device, out.String())
	}
	want := map[string][3]string{ // pipeline → items, dead letters, first tensor
		"image": {"6", "1", "pixel_values F32 [3 224 224]"},
		"text":  {"27", "1", "input_ids I64"},
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		w, ok := want[f[0]]
		if !ok {
			continue
		}
		if f[1] != w[0] || f[2] != w[1] || !strings.Contains(line, w[2]) {
			t.Errorf("demo row %q: want %s items, %s dead letters, %s", line, w[0], w[1], w[2])
		}
		delete(want, f[0])
	}
	if len(want) > 0 {
		t.Fatalf("demo table lacks rows for %v:\n%s", want, out.String())
	}
}

func TestLogLevelFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		in   string
		want slog.Level
		bad  bool
	}{{"", slog.LevelInfo, false}, {"debug", slog.LevelDebug, false}, {"WARN", slog.LevelWarn, false}, {"error", slog.LevelError, false}, {"loud", 0, true}} {
		got, err := logLevel(c.in)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("logLevel(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
	t.Setenv("STOKER_LOG_LEVEL", "loud")
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "STOKER_LOG_LEVEL") {
		t.Errorf("an unknown level: exit %d, stderr %q; want exit 2 naming STOKER_LOG_LEVEL", code, errOut.String())
	}
}
