package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

func TestDefaultYAMLIsDeployFile(t *testing.T) {
	deploy, err := os.ReadFile(filepath.Join("..", "..", "deploy", "stoker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(deploy, defaultYAML) {
		t.Fatal("internal/config/default.yaml differs from deploy/stoker.yaml: cp deploy/stoker.yaml internal/config/default.yaml")
	}
	if !bytes.Equal(DefaultYAML(), deploy) {
		t.Fatal("DefaultYAML() differs from deploy/stoker.yaml")
	}
}

// wantDefault is the default configuration written out by hand from the
// issue's defaults, independently of the code under test.
func wantDefault() *Config {
	backoff := []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	pol := batch.Policy{MaxItems: 64, MaxBytes: 64 << 20, MaxWait: 10 * time.Millisecond}
	streams := Streams{Replicas: 1, InputRetention: RetentionLimits, OutputMaxBytes: 1 << 30}
	return &Config{
		NATS:         NATS{Name: "stoker"},
		Embedded:     Embedded{Listen: "127.0.0.1:4222", DataDir: "./stoker-data"},
		Metrics:      Metrics{Addr: "127.0.0.1:9090"},
		Device:       "auto",
		DrainTimeout: 30 * time.Second,
		CPUFallback:  true,
		Pipelines: []Pipeline{
			{
				Name: "image", Kind: "image", Subjects: []string{"raw.image.>"},
				Stream: "RAW_IMAGE", Consumer: "stoker-image",
				Output: "tensors.image", OutputStream: "TENSORS_IMAGE", OutputMode: "batch",
				DeadLetter: "dlq.image", DeadLetterStream: "DLQ_IMAGE",
				Batch: pol, Limits: Limits{MaxBytes: 32 << 20, MaxPixels: 100_000_000}, Streams: streams,
				AckWait: 30 * time.Second, MaxDeliver: 5, RetryBackoff: backoff,
				MaxAckPending: 256, MaxInflightBytes: 256 << 20,
				Image: &image.Spec{
					Resize: 256, Crop: 224,
					Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225},
					Layout: image.NCHW, DType: preprocess.Float32,
					MaxBytes: 32 << 20, MaxPixels: 100_000_000, DecodeMemory: 1 << 30,
				},
			},
			{
				Name: "text", Kind: "text", Subjects: []string{"raw.text.>"},
				Stream: "RAW_TEXT", Consumer: "stoker-text",
				Output: "tensors.text", OutputStream: "TENSORS_TEXT", OutputMode: "batch",
				DeadLetter: "dlq.text", DeadLetterStream: "DLQ_TEXT",
				Batch: pol, Limits: Limits{MaxBytes: 1 << 20}, Streams: streams,
				AckWait: 30 * time.Second, MaxDeliver: 5, RetryBackoff: backoff,
				MaxAckPending: 256, MaxInflightBytes: 256 << 20,
				Text: &text.Spec{
					Tokenizer: "", MaxLength: 128, Truncation: true,
					Padding: text.PadLongest, InvalidUTF8: text.RejectInvalid,
					IDType: preprocess.Int64, MaxBytes: 1 << 20,
				},
			},
		},
	}
}

func TestDefault(t *testing.T) {
	got := Default()
	if want := wantDefault(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// TestBuiltInDefaultsMatchFile checks that the example file states the
// defaults truly: an empty file and a file of comments give the same
// configuration as the example file itself.
func TestBuiltInDefaultsMatchFile(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "{}\n"} {
		got, err := Parse([]byte(src), "empty.yaml")
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if want := wantDefault(); !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", src, got, want)
		}
	}
}

func TestOnlyNamedPipelinesRun(t *testing.T) {
	c, err := Parse([]byte("pipelines:\n  - name: text\n    batch: {max_items: 8}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pipelines) != 1 {
		t.Fatalf("%d pipelines, want only text", len(c.Pipelines))
	}
	if _, ok := c.Pipeline("image"); ok {
		t.Error("image pipeline present though the file names only text")
	}
	p, ok := c.Pipeline("text")
	if !ok {
		t.Fatal("no text pipeline")
	}
	want := wantDefault().Pipelines[1]
	want.Batch.MaxItems = 8
	want.MaxAckPending = 4 * 8 // 256MiB / 64MiB = 4 batches in flight
	if !reflect.DeepEqual(*p, want) {
		t.Errorf("text pipeline =\n%+v\nwant\n%+v", *p, want)
	}
}

func TestCustomPipeline(t *testing.T) {
	src := `
pipelines:
  - name: thumbs-v2
    kind: image
    subjects: [uploads.thumbs.*, uploads.avatars.>]
    output_mode: item
    max_ack_pending: 100
    retry_backoff: [250ms]
    threads: 3
    inflight_batches: 3
    batch: {max_items: 16, max_bytes: 512KiB, max_wait: 1s}
    limits: {max_bytes: 100KB, max_pixels: 4000000}
    streams: {replicas: 3, input_retention: workqueue, input_max_bytes: 10GiB, output_max_age: 72h, output_max_bytes: 0}
    image: {resize: 128, crop: 112, layout: NHWC, dtype: uint8, mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1], decode_memory: 64MiB}
`
	c, err := Parse([]byte(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Pipeline("thumbs-v2")
	if p == nil {
		t.Fatal("no pipeline thumbs-v2")
	}
	want := Pipeline{
		Name: "thumbs-v2", Kind: "image", Subjects: []string{"uploads.thumbs.*", "uploads.avatars.>"},
		Stream: "RAW_THUMBS_V2", Consumer: "stoker-thumbs-v2",
		Output: "tensors.thumbs-v2", OutputStream: "TENSORS_THUMBS_V2", OutputMode: "item",
		DeadLetter: "dlq.thumbs-v2", DeadLetterStream: "DLQ_THUMBS_V2",
		Batch:   batch.Policy{MaxItems: 16, MaxBytes: 512 * 1024, MaxWait: time.Second},
		Limits:  Limits{MaxBytes: 100_000, MaxPixels: 4_000_000},
		Streams: Streams{Replicas: 3, InputRetention: RetentionWorkQueue, InputMaxBytes: 10 << 30, OutputMaxAge: 72 * time.Hour},
		AckWait: 30 * time.Second, MaxDeliver: 5, RetryBackoff: []time.Duration{250 * time.Millisecond},
		MaxAckPending: 100, MaxInflightBytes: 256 << 20, Threads: 3, InflightBatches: 3,
		Image: &image.Spec{
			Resize: 128, Crop: 112, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.5, 1},
			Layout: image.NHWC, DType: preprocess.Uint8, MaxBytes: 100_000, MaxPixels: 4_000_000,
			DecodeMemory: 64 << 20,
		},
	}
	if !reflect.DeepEqual(*p, want) {
		t.Errorf("pipeline =\n%+v\nwant\n%+v", *p, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"1000", 1000, false},
		{"64MiB", 64 * 1024 * 1024, false},
		{"1GiB", 1024 * 1024 * 1024, false},
		{"512KiB", 512 * 1024, false},
		{"64MB", 64_000_000, false},
		{"2KB", 2000, false},
		{"3TiB", 3 << 40, false},
		{"7B", 7, false},
		{"0", 0, false},
		{"64 MiB", 64 << 20, false},
		{"1.5GiB", 0, true},
		{"-1", 0, true},
		{"64mib", 0, true},
		{"MiB", 0, true},
		{"", 0, true},
		{"99999999999TiB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestErrors has one case per rule: the file, and the exact error line it
// must produce (source:line: path: reason).
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want string
	}{
		// Reading.
		{"unknown top-level key", "natz: {}\n",
			"t.yaml:1: natz: unknown key (known keys here: nats, embedded, metrics, device, drain_timeout, cpu_fallback, pipelines)"},
		{"unknown nested key", "pipelines:\n  - name: image\n    batch: {max_itemz: 3}\n",
			"t.yaml:3: pipelines[0].batch.max_itemz: unknown key (known keys here: max_items, max_bytes, max_wait)"},
		{"duplicate key", "device: cpu\ndevice: cuda\n",
			"t.yaml:2: device: key given twice (first on line 1)"},
		{"wrong type int", "pipelines:\n  - name: image\n    max_deliver: many\n",
			`t.yaml:3: pipelines[0].max_deliver: want a whole number, got "many"`},
		{"wrong type bool", "pipelines:\n  - name: text\n    text: {truncation: maybe}\n",
			`t.yaml:3: pipelines[0].text.truncation: want true or false, got "maybe"`},
		{"list where a mapping goes", "nats: [a]\n",
			`t.yaml:1: nats: want a mapping of keys, got a list`},
		{"scalar where a list goes", "pipelines:\n  - name: image\n    subjects: raw.image.>\n",
			`t.yaml:3: pipelines[0].subjects: want a list, got "raw.image.>"`},
		{"bad size", "pipelines:\n  - name: image\n    batch: {max_bytes: 64 megs}\n",
			`t.yaml:3: pipelines[0].batch.max_bytes: "64 megs" is not a size (want a whole number of bytes such as 1000, 512KiB, 64MiB, 1GiB or 64MB)`},
		{"bad duration", "drain_timeout: 30\n",
			`t.yaml:1: drain_timeout: "30" is not a duration (want a number with a unit such as 10ms, 30s or 1m30s)`},
		// Top level.
		{"unknown device", "device: tpu\n", `t.yaml:1: device: must be auto, cpu or cuda, got "tpu"`},
		{"drain timeout zero", "drain_timeout: 0s\n", "t.yaml:1: drain_timeout: must be > 0, got 0s"},
		{"bad metrics addr", "metrics: {addr: localhost}\n", `t.yaml:1: metrics.addr: "localhost" is not host:port (or off to disable the endpoint)`},
		{"bad listen", "embedded: {listen: \"127.0.0.1:99999\"}\n", `t.yaml:1: embedded.listen: "127.0.0.1:99999": port must be a number from 0 to 65535`},
		{"empty data dir", "embedded: {data_dir: \"\"}\n", "t.yaml:1: embedded.data_dir: must not be empty"},
		{"bad nats url scheme", "nats: {url: \"http://x:4222\"}\n", `t.yaml:1: nats.url: "http://x:4222": scheme must be nats, tls, ws or wss, like nats://host:4222`},
		{"nats url without host", "nats: {url: \"nats://\"}\n", `t.yaml:1: nats.url: "nats://" has no host`},
		{"two auth methods", "nats: {url: \"nats://a:1\", token: t, creds: c}\n", "t.yaml:1: nats: use one way to authenticate, got creds and token"},
		{"password without user", "nats: {url: \"nats://a:1\", password: p}\n", "t.yaml:1: nats.user: must be set with nats.password"},
		{"tls cert without key", "nats: {url: \"nats://a:1\", tls: {cert: c}}\n", "t.yaml:1: nats.tls: cert and key go together (got only one of them)"},
		{"no pipelines", "pipelines: []\n", "t.yaml:1: pipelines: at least one pipeline is needed"},
		// Pipelines.
		{"empty name", "pipelines:\n  - kind: text\n", "t.yaml:2: pipelines[0].name: must not be empty"},
		{"bad name", "pipelines:\n  - name: \"a b\"\n    kind: text\n", `t.yaml:2: pipelines[0].name: "a b": use letters, digits, '-' and '_' only`},
		{"duplicate name", "pipelines:\n  - name: text\n  - name: text\n    subjects: [other.>]\n",
			`t.yaml:3: pipelines[1].name: "text" is already the name of pipelines[0]`},
		{"kind missing", "pipelines:\n  - name: audio\n", "t.yaml:2: pipelines[0].kind: must be image or text (it can be left out only when the name is image or text)"},
		{"kind unknown", "pipelines:\n  - name: audio\n    kind: audio\n", `t.yaml:3: pipelines[0].kind: must be image or text, got "audio"`},
		{"text section in image pipeline", "pipelines:\n  - name: image\n    text: {max_length: 5}\n", "t.yaml:3: pipelines[0].text: not allowed in an image pipeline"},
		{"image section in text pipeline", "pipelines:\n  - name: text\n    image: {}\n", "t.yaml:3: pipelines[0].image: not allowed in a text pipeline"},
		{"max_pixels on text", "pipelines:\n  - name: text\n    limits: {max_pixels: 5}\n", "t.yaml:3: pipelines[0].limits.max_pixels: only image pipelines have this limit"},
		{"no subjects", "pipelines:\n  - name: text\n    subjects: []\n", "t.yaml:3: pipelines[0].subjects: at least one subject is needed"},
		{"subject with space", "pipelines:\n  - name: text\n    subjects: [\"raw text\"]\n", `t.yaml:3: pipelines[0].subjects[0]: "raw text": a subject must not contain white space`},
		{"subject empty token", "pipelines:\n  - name: text\n    subjects: [raw..text]\n", `t.yaml:3: pipelines[0].subjects[0]: "raw..text": empty token (a leading, trailing or doubled '.')`},
		{"subject trailing dot", "pipelines:\n  - name: text\n    subjects: [raw.]\n", `t.yaml:3: pipelines[0].subjects[0]: "raw.": empty token (a leading, trailing or doubled '.')`},
		{"> not last", "pipelines:\n  - name: text\n    subjects: [raw.>.x]\n", `t.yaml:3: pipelines[0].subjects[0]: "raw.>.x": '>' may only be the last token`},
		{"partial wildcard", "pipelines:\n  - name: text\n    subjects: [raw.te*]\n", `t.yaml:3: pipelines[0].subjects[0]: "raw.te*": '*' and '>' must be whole tokens`},
		{"subjects overlap across pipelines", "pipelines:\n  - name: image\n  - name: text\n    subjects: [raw.*.>]\n",
			`t.yaml:4: pipelines[1].subjects[0]: "raw.*.>" overlaps "raw.image.>" (pipelines[0].subjects[0]): a message would go to both`},
		{"subjects overlap within a pipeline", "pipelines:\n  - name: text\n    subjects: [a.b, a.*]\n",
			`t.yaml:3: pipelines[0].subjects[1]: "a.*" overlaps "a.b" (pipelines[0].subjects[0]): a message would go to both`},
		{"output with wildcard", "pipelines:\n  - name: text\n    output: tensors.*\n", `t.yaml:3: pipelines[0].output: "tensors.*": must be a literal subject, without '*' or '>'`},
		{"dead letter with wildcard", "pipelines:\n  - name: text\n    dead_letter: dlq.>\n", `t.yaml:3: pipelines[0].dead_letter: "dlq.>": must be a literal subject, without '*' or '>'`},
		{"output feeds input", "pipelines:\n  - name: image\n  - name: text\n    output: raw.image.out\n",
			`t.yaml:4: pipelines[1].output: "raw.image.out" matches input subject "raw.image.>" (pipelines[0].subjects[0]): the pipeline's output would feed an input and loop`},
		{"dead letter feeds input", "pipelines:\n  - name: text\n    dead_letter: raw.text.dead\n",
			`t.yaml:3: pipelines[0].dead_letter: "raw.text.dead" matches input subject "raw.text.>" (pipelines[0].subjects[0]): the pipeline's output would feed an input and loop`},
		{"output equals dead letter", "pipelines:\n  - name: text\n    output: out.x\n    dead_letter: out.x\n", `t.yaml:4: pipelines[0].dead_letter: must differ from output "out.x"`},
		{"two pipelines one output", "pipelines:\n  - name: image\n  - name: text\n    output: tensors.image\n",
			`t.yaml:4: pipelines[1].output: "tensors.image" is already used by pipelines[0].output`},
		{"bad stream name", "pipelines:\n  - name: text\n    stream: RAW.TEXT\n", `t.yaml:3: pipelines[0].stream: "RAW.TEXT": must not contain '.', '*', '>', '/' or '\'`},
		{"bad consumer name", "pipelines:\n  - name: text\n    consumer: \"a b\"\n", `t.yaml:3: pipelines[0].consumer: "a b": must not contain white space`},
		{"stream used twice", "pipelines:\n  - name: text\n    output_stream: RAW_TEXT\n", `t.yaml:3: pipelines[0].output_stream: stream "RAW_TEXT" is already used by pipelines[0].stream`},
		{"output mode", "pipelines:\n  - name: text\n    output_mode: each\n", `t.yaml:3: pipelines[0].output_mode: must be batch or item, got "each"`},
		{"max_items zero", "pipelines:\n  - name: image\n  - name: text\n    batch: {max_items: 0}\n", "t.yaml:4: pipelines[1].batch.max_items: must be > 0, got 0"},
		{"stream replicas", "pipelines:\n  - name: text\n    streams: {replicas: 7}\n", "t.yaml:3: pipelines[0].streams.replicas: must be within 1..5 (JetStream's limit), got 7"},
		{"tiny output stream", "pipelines:\n  - name: text\n    streams: {output_max_bytes: 1MiB}\n", "t.yaml:3: pipelines[0].streams.output_max_bytes: 1048576 is below 8388608 (8 MiB): a stream must hold more than a few messages (0: no bound)"},
		{"input stream under an item", "pipelines:\n  - name: image\n    streams: {input_retention: workqueue, input_max_bytes: 16MiB}\n", "t.yaml:3: pipelines[0].streams.input_max_bytes: 16777216 is less than limits.max_bytes 33554432: the largest item allowed could never be published"},
		{"input bound kept full by processed items", "pipelines:\n  - name: text\n    streams: {input_max_bytes: 1GiB}\n", "t.yaml:3: pipelines[0].streams.input_max_bytes: needs input_retention: workqueue: with limits retention processed items stay, fill the bound, and every publish is then refused"},
		{"unknown retention", "pipelines:\n  - name: text\n    streams: {input_retention: interest}\n", `t.yaml:3: pipelines[0].streams.input_retention: must be limits or workqueue, got "interest"`},
		{"image max_items over the grid", "pipelines:\n  - name: image\n    batch: {max_items: 65536}\n    max_ack_pending: 70000\n",
			"t.yaml:3: pipelines[0].batch.max_items: must be at most 65535 for an image pipeline (one GPU launch per batch, one grid slice per image), got 65536"},
		{"batch max_bytes zero", "pipelines:\n  - name: text\n    batch: {max_bytes: 0}\n    limits: {max_bytes: 0}\n", "t.yaml:3: pipelines[0].batch.max_bytes: must be > 0, got 0"},
		{"max_wait zero", "pipelines:\n  - name: text\n    batch: {max_wait: 0s}\n", "t.yaml:3: pipelines[0].batch.max_wait: must be > 0, got 0s"},
		{"item limit zero", "pipelines:\n  - name: text\n    limits: {max_bytes: 0}\n", "t.yaml:3: pipelines[0].limits.max_bytes: must be > 0, got 0"},
		{"item limit over batch", "pipelines:\n  - name: text\n    limits: {max_bytes: 2MiB}\n    batch: {max_bytes: 1MiB}\n",
			"t.yaml:3: pipelines[0].limits.max_bytes: 2097152 is larger than batch.max_bytes 1048576: one item must fit in a batch"},
		{"max_pixels zero", "pipelines:\n  - name: image\n    limits: {max_pixels: 0}\n", "t.yaml:3: pipelines[0].limits.max_pixels: must be > 0, got 0"},
		{"ack_wait not above max_wait", "pipelines:\n  - name: text\n    ack_wait: 1s\n    batch: {max_wait: 2s}\n",
			"t.yaml:3: pipelines[0].ack_wait: 1s must be longer than batch.max_wait 2s, or items would be redelivered while they wait in a batch"},
		{"max_deliver zero", "pipelines:\n  - name: text\n    max_deliver: 0\n", "t.yaml:3: pipelines[0].max_deliver: must be > 0, got 0"},
		{"backoff not positive", "pipelines:\n  - name: text\n    retry_backoff: [1s, 0s]\n", "t.yaml:3: pipelines[0].retry_backoff[1]: must be > 0, got 0s"},
		{"max_ack_pending stalls batching", "pipelines:\n  - name: text\n    max_ack_pending: 10\n",
			"t.yaml:3: pipelines[0].max_ack_pending: 10 is less than batch.max_items 64: the server would stop delivering before a batch fills, and every batch would wait batch.max_wait"},
		{"max_ack_pending negative", "pipelines:\n  - name: text\n    max_ack_pending: -1\n", "t.yaml:3: pipelines[0].max_ack_pending: must be >= 0 (0: derived), got -1"},
		{"inflight below batch", "pipelines:\n  - name: text\n    max_inflight_bytes: 32MiB\n",
			"t.yaml:3: pipelines[0].max_inflight_bytes: 33554432 is less than batch.max_bytes 67108864: a full batch could never be in flight"},
		{"inflight zero", "pipelines:\n  - name: text\n    max_inflight_bytes: 0\n", "t.yaml:3: pipelines[0].max_inflight_bytes: must be > 0, got 0"},
		{"threads negative", "pipelines:\n  - name: text\n    threads: -2\n", "t.yaml:3: pipelines[0].threads: must be >= 0 (0: all cores), got -2"},
		{"inflight_batches negative", "pipelines:\n  - name: image\n    inflight_batches: -1\n", "t.yaml:3: pipelines[0].inflight_batches: must be within 0..8 (0: 2 on a GPU, 1 on the CPU), got -1"},
		{"inflight_batches too many", "pipelines:\n  - name: image\n    inflight_batches: 9\n", "t.yaml:3: pipelines[0].inflight_batches: must be within 0..8 (0: 2 on a GPU, 1 on the CPU), got 9"},
		// Image section.
		{"mean of two", "pipelines:\n  - name: image\n    image: {mean: [0.5, 0.5]}\n", "t.yaml:3: pipelines[0].image.mean: want 3 numbers (red, green, blue), got 2"},
		{"std of four", "pipelines:\n  - name: image\n    image:\n      std: [1, 1, 1, 1]\n", "t.yaml:4: pipelines[0].image.std: want 3 numbers (red, green, blue), got 4"},
		{"std zero", "pipelines:\n  - name: image\n    image:\n      std: [1, 0, 1]\n", "t.yaml:4: pipelines[0].image.std[1]: 0 must be a positive finite number"},
		{"unknown image dtype", "pipelines:\n  - name: image\n    image: {dtype: float64}\n", `t.yaml:3: pipelines[0].image.dtype: unknown dtype "float64" (want float32, float16, bfloat16, uint8, int64 or int32)`},
		{"int dtype for image", "pipelines:\n  - name: image\n    image: {dtype: int64}\n", `t.yaml:3: pipelines[0].image.dtype: "I64" is not supported (want float32, float16, bfloat16 or uint8)`},
		{"unknown layout", "pipelines:\n  - name: image\n    image: {layout: CHW}\n", `t.yaml:3: pipelines[0].image.layout: "CHW" is not supported (want NCHW or NHWC)`},
		{"crop over resize", "pipelines:\n  - name: image\n    image: {resize: 100}\n", "t.yaml:3: pipelines[0].image.crop: 224 is larger than image.resize 100"},
		{"resize zero", "pipelines:\n  - name: image\n    image: {resize: 0}\n", "t.yaml:3: pipelines[0].image.resize: 0 is out of range (want 1..16384)"},
		// Text section.
		{"max_length zero", "pipelines:\n  - name: text\n    text: {max_length: 0}\n", "t.yaml:3: pipelines[0].text.max_length: must be positive, got 0"},
		{"padding unknown", "pipelines:\n  - name: text\n    text: {padding: right}\n", `t.yaml:3: pipelines[0].text.padding: must be "longest" or "max_length", got "right"`},
		{"invalid_utf8 unknown", "pipelines:\n  - name: text\n    text: {invalid_utf8: drop}\n", `t.yaml:3: pipelines[0].text.invalid_utf8: must be "reject" or "replace", got "drop"`},
		{"id dtype float", "pipelines:\n  - name: text\n    text: {id_dtype: float32}\n", `t.yaml:3: pipelines[0].text.id_dtype: must be int64 or int32, got "float32"`},
		{"id dtype unknown", "pipelines:\n  - name: text\n    text: {id_dtype: long}\n", `t.yaml:3: pipelines[0].text.id_dtype: unknown dtype "long" (want float32, float16, bfloat16, uint8, int64 or int32)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "t.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			lines := strings.Split(err.Error(), "\n")
			found := false
			for _, l := range lines {
				found = found || l == tc.want
			}
			if !found {
				t.Errorf("errors:\n%s\nwant a line:\n%s", err, tc.want)
			}
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	src := "device: tpu\npipelines:\n  - name: text\n    max_deliver: 0\n    threads: -1\n"
	_, err := Parse([]byte(src), "t.yaml")
	got := FieldErrors(err)
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
	}
	want := []string{"device", "pipelines[0].max_deliver", "pipelines[0].threads"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %v, want %v (error: %v)", paths, want, err)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Parse([]byte("pipelines: [\n"), "t.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml: yaml: line") {
		t.Fatalf("err = %v, want a YAML syntax error naming the file and line", err)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	c.Pipelines[1].Batch.MaxItems = 0
	c.Device = "gpu"
	err := c.Validate()
	want := "device: must be auto, cpu or cuda, got \"gpu\"\npipelines[1].batch.max_items: must be > 0, got 0"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v\nwant\n%s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("relative paths resolve against the file", func(t *testing.T) {
		c, err := Load(write("ok.yaml", "pipelines:\n  - name: text\n    text: {tokenizer: vocab.json}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Pipelines[0].Text.Tokenizer, filepath.Join(dir, "vocab.json"); got != want {
			t.Errorf("tokenizer = %q, want %q", got, want)
		}
	})
	t.Run("missing file named by a key", func(t *testing.T) {
		path := write("bad.yaml", "nats: {url: \"nats://h:4222\", creds: nope.creds}\n")
		_, err := Load(path)
		want := path + ": nats.creds: cannot read " + filepath.Join(dir, "nope.creds") + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Errorf("Load = %v\nwant %s", err, want)
		}
	})
	t.Run("missing config file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "absent.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load = %v, want a not-exist error", err)
		}
	})
	t.Run("deploy file", func(t *testing.T) {
		c, err := Load(filepath.Join("..", "..", "deploy", "stoker.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, wantDefault()) {
			t.Errorf("Load(deploy/stoker.yaml) = %+v, want the defaults", c)
		}
	})
}

func TestDeriveMaxAckPending(t *testing.T) {
	for _, tc := range []struct {
		name     string
		items    int
		maxBytes int64
		inflight int64
		want     int
	}{
		{"defaults: four batches", 64, 64 << 20, 256 << 20, 256},
		{"capped at four", 10, 1 << 20, 1 << 30, 40},
		{"at least two", 10, 64 << 20, 64 << 20, 20},
		{"three", 8, 10, 35, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DeriveMaxAckPending(batch.Policy{MaxItems: tc.items, MaxBytes: tc.maxBytes}, tc.inflight)
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"a.*", "a.b.c", false},
		{"*.b", "a.*", true},
		{">", "x.y", true},
		{"a.b.c", "a.b", false},
		{"raw.image.>", "raw.text.>", false},
	} {
		if got := subjectsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := subjectsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// "off" disables the metrics endpoint in the file as on the command line
// (--metrics-addr off); "" does too.
func TestMetricsAddrOff(t *testing.T) {
	for _, src := range []string{"metrics: {addr: off}\n", "metrics: {addr: \"\"}\n"} {
		c, err := Parse([]byte(src), "t.yaml")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if c.Metrics.Addr != "" {
			t.Errorf("%q: metrics address %q, want none", src, c.Metrics.Addr)
		}
	}
}

// An unknown key does not hide the other problems of the file.
func TestUnknownKeyDoesNotHideOtherErrors(t *testing.T) {
	src := "device: gpu\ndrain_timeout: 0s\npipelines:\n  - name: text\n    batch: {max_items: 0}\n    bogus_key: 1\n"
	_, err := Parse([]byte(src), "bad.yaml")
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, want := range []string{
		"bad.yaml:6: pipelines[0].bogus_key: unknown key",
		`bad.yaml:1: device: must be auto, cpu or cuda, got "gpu"`,
		"bad.yaml:2: drain_timeout: must be > 0, got 0s",
		"bad.yaml:5: pipelines[0].batch.max_items: must be > 0, got 0",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
}
