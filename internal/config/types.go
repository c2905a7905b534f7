package config

import (
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// Config is the whole configuration of one stoker process.
type Config struct {
	// NATS is how to reach an external server; an empty URL starts the
	// embedded one.
	NATS NATS
	// Embedded configures the embedded server (used when NATS.URL is "").
	Embedded Embedded
	// Metrics configures the HTTP endpoint (/metrics, /healthz, /readyz).
	Metrics Metrics
	// Device is "auto" (default: the GPU when the binary has one, else the
	// CPU), "cpu" or "cuda".
	Device string
	// DrainTimeout bounds the soft stop on SIGINT/SIGTERM. Default 30s.
	DrainTimeout time.Duration
	// CPUFallback moves a pipeline to the CPU when its GPU is lost
	// (default true); false leaves the batches failing (and retried) until
	// the process is restarted.
	CPUFallback bool
	// Pipelines run by this process; at least one.
	Pipelines []Pipeline
}

// NATS holds the connection settings of an external NATS server. At most
// one of Creds, Token, NKey and User/Password is set.
type NATS struct {
	URL      string // comma-separated server URLs; "" (default): embedded server
	Creds    string // path of a .creds file (JWT and seed)
	User     string
	Password string
	Token    string
	NKey     string // path of an nkey seed file
	TLS      TLS
	Name     string // connection name shown by the server. Default "stoker"
}

// TLS holds client TLS files; Cert and Key go together.
type TLS struct {
	Cert, Key, CA string
}

// Embedded configures the embedded nats-server.
type Embedded struct {
	Listen  string // host:port. Default 127.0.0.1:4222 (loopback only)
	DataDir string // JetStream store. Default ./stoker-data
}

// Metrics configures the HTTP endpoint.
type Metrics struct {
	Addr string // host:port. Default 127.0.0.1:9090; "" disables the endpoint
}

// Streams are the settings of the streams stoker creates for a pipeline
// when they are missing (input, output, dead letter); existing streams are
// used as they are.
type Streams struct {
	// Replicas is each stream's number of copies in a JetStream cluster
	// (1..5). Default 1.
	Replicas int
	// InputRetention is the input stream's: RetentionLimits (default), where
	// processed items stay until InputMaxAge removes them (and `stoker
	// publish --resume` can skip them), or RetentionWorkQueue, where an item
	// is removed once acknowledged or dead-lettered, so the stream holds
	// the backlog alone.
	InputRetention string
	// InputMaxAge drops input older than it, processed or not; 0 (default)
	// keeps it.
	InputMaxAge time.Duration
	// InputMaxBytes bounds a work-queue input stream's backlog; when it is
	// full, publishes are refused (no unprocessed item is dropped). 0
	// (default): no bound. Only with RetentionWorkQueue: under limits
	// retention processed items would fill it.
	InputMaxBytes int64
	// OutputMaxAge drops tensors and dead letters older than it; 0
	// (default) keeps them.
	OutputMaxAge time.Duration
	// OutputMaxBytes bounds the output and the dead-letter stream each;
	// when one is full its oldest messages are dropped. Default 1 GiB.
	OutputMaxBytes int64
}

// Input stream retentions.
const (
	RetentionLimits    = "limits"
	RetentionWorkQueue = "workqueue"
)

// Limits are per-item limits; an item over one is dead-lettered.
type Limits struct {
	MaxBytes  int64 // raw item size. Default 32 MiB for image, 1 MiB for text
	MaxPixels int64 // width×height from the image header (image only). Default 100,000,000
}

// The kinds of pipeline.
const (
	KindImage = "image"
	KindText  = "text"
)

// The output modes.
const (
	OutputBatch = "batch" // one message per batch (split when over max_payload)
	OutputItem  = "item"  // one message per item, Nats-Msg-Id <pipeline>:<stream>:<stream sequence>:<stored ns>
)

// The devices.
const (
	DeviceAuto = "auto"
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// Pipeline is one input-to-tensors pipeline. After Parse or Load every
// field is filled in (MaxAckPending included).
type Pipeline struct {
	Name string // unique; letters, digits, '-' and '_'
	Kind string // KindImage or KindText. Default: Name when it is one of them

	Subjects []string // input subjects (wildcards allowed). Default raw.<name>.>
	Stream   string   // input stream, created with Subjects if missing. Default RAW_<NAME>
	Consumer string   // durable pull consumer shared by replicas. Default stoker-<name>

	Output       string // literal output subject. Default tensors.<name>
	OutputStream string // created if missing. Default TENSORS_<NAME>
	OutputMode   string // OutputBatch (default) or OutputItem

	DeadLetter       string // literal dead-letter subject. Default dlq.<name>
	DeadLetterStream string // created if missing. Default DLQ_<NAME>

	Batch   batch.Policy // default 64 items, 64 MiB, 10ms
	Limits  Limits
	Streams Streams

	AckWait       time.Duration   // default 30s; must exceed Batch.MaxWait
	MaxDeliver    int             // deliveries before dead-lettering. Default 5
	RetryBackoff  []time.Duration // NakWithDelay schedule. Default 1s, 5s, 30s
	MaxAckPending int             // consumer's MaxAckPending; 0 in the file: derived (see DeriveMaxAckPending)
	// MaxInflightBytes bounds the raw bytes fetched but not yet acked.
	// Default 256 MiB; at least Batch.MaxBytes.
	MaxInflightBytes int64
	Threads          int // preprocessing goroutines; 0 (default): all cores
	// InflightBatches is how many batches are preprocessed at once; 0
	// (default): 2 when the pipeline runs on a GPU, so that the next batch
	// is decoded on the CPU while the GPU transforms this one, else 1.
	InflightBatches int

	Image *image.Spec // set exactly when Kind is KindImage
	Text  *text.Spec  // set exactly when Kind is KindText
}

// DeriveMaxAckPending is the MaxAckPending used when the file says 0: as
// many full batches as fit in max_inflight_bytes at batch.max_bytes each,
// at least 2 and at most 4, times batch.max_items. With the defaults:
// 4 × 64 = 256.
func DeriveMaxAckPending(p batch.Policy, maxInflightBytes int64) int {
	k := int64(2)
	if p.MaxBytes > 0 {
		k = min(max(maxInflightBytes/p.MaxBytes, 2), 4)
	}
	return int(k) * p.MaxItems
}
