package config

import (
	"strings"
	"time"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// The defaults not already declared by batch, image and text.
const (
	DefaultListen           = "127.0.0.1:4222"
	DefaultDataDir          = "./stoker-data"
	DefaultMetricsAddr      = "127.0.0.1:9090"
	DefaultClientName       = "stoker"
	DefaultDrainTimeout     = 30 * time.Second
	DefaultImageMaxBytes    = 32 << 20
	DefaultTextMaxBytes     = 1 << 20
	DefaultMaxPixels        = 100_000_000
	DefaultDecodeMemory     = 1 << 30
	DefaultOutputMaxBytes   = 1 << 30
	DefaultAckWait          = 30 * time.Second
	DefaultMaxDeliver       = 5
	DefaultMaxInflightBytes = 256 << 20
)

// DefaultRetryBackoff is the default NakWithDelay schedule: the n-th
// transient failure of an item waits the n-th entry (the last one
// thereafter).
var DefaultRetryBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// defaultFile is the configuration before the file is applied.
func defaultFile() fileConfig {
	return fileConfig{
		NATS:         fileNATS{Name: DefaultClientName},
		Embedded:     fileEmbedded{Listen: DefaultListen, DataDir: DefaultDataDir},
		Metrics:      fileMetrics{Addr: DefaultMetricsAddr},
		Device:       DeviceAuto,
		DrainTimeout: duration(DefaultDrainTimeout),
		CPUFallback:  true,
	}
}

// defaultPipelineNames are run when the file has no pipelines key.
var defaultPipelineNames = []string{KindImage, KindText}

// upperName turns a pipeline name into the suffix of its stream names.
func upperName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// defaultPipeline is a pipeline named name of the given kind with every
// other field at its default. kind "" or unknown leaves both sections nil.
func defaultPipeline(name, kind string) filePipeline {
	up := upperName(name)
	bp := batch.DefaultPolicy()
	backoff := make([]duration, len(DefaultRetryBackoff))
	for i, d := range DefaultRetryBackoff {
		backoff[i] = duration(d)
	}
	p := filePipeline{
		Name:             name,
		Kind:             kind,
		Subjects:         []string{"raw." + name + ".>"},
		Stream:           "RAW_" + up,
		Consumer:         "stoker-" + name,
		Output:           "tensors." + name,
		OutputStream:     "TENSORS_" + up,
		OutputMode:       OutputBatch,
		DeadLetter:       "dlq." + name,
		DeadLetterStream: "DLQ_" + up,
		Batch:            fileBatch{MaxItems: bp.MaxItems, MaxBytes: size(bp.MaxBytes), MaxWait: duration(bp.MaxWait)},
		AckWait:          duration(DefaultAckWait),
		MaxDeliver:       DefaultMaxDeliver,
		RetryBackoff:     backoff,
		MaxInflightBytes: DefaultMaxInflightBytes,
		Streams:          fileStreams{Replicas: 1, InputRetention: RetentionLimits, OutputMaxBytes: DefaultOutputMaxBytes},
	}
	switch kind {
	case KindImage:
		s := image.DefaultSpec()
		p.Image = &fileImage{
			Resize: s.Resize, Crop: s.Crop,
			Mean:   []float64{float64(s.Mean[0]), float64(s.Mean[1]), float64(s.Mean[2])},
			Std:    []float64{float64(s.Std[0]), float64(s.Std[1]), float64(s.Std[2])},
			Layout: string(s.Layout), DType: dtypeName(string(s.DType)),
			DecodeMemory: DefaultDecodeMemory,
		}
		p.Limits = fileLimits{MaxBytes: DefaultImageMaxBytes, MaxPixels: DefaultMaxPixels}
	case KindText:
		s := text.DefaultSpec()
		p.Text = &fileText{
			Tokenizer: s.Tokenizer, MaxLength: s.MaxLength, Truncation: s.Truncation,
			Padding: string(s.Padding), InvalidUTF8: string(s.InvalidUTF8), IDDType: dtypeName(string(s.IDType)),
		}
		p.Limits = fileLimits{MaxBytes: DefaultTextMaxBytes}
	}
	return p
}

// dtypeName turns a safetensors dtype into the name users write.
func dtypeName(d string) string {
	switch d {
	case "F32":
		return "float32"
	case "F16":
		return "float16"
	case "BF16":
		return "bfloat16"
	case "U8":
		return "uint8"
	case "I64":
		return "int64"
	case "I32":
		return "int32"
	}
	return d
}
