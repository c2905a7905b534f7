package config

// The file* types mirror the YAML file; their yaml tags are the key names.
// They are decoded over values already holding the defaults, so a key the
// file leaves out keeps its default.

type fileConfig struct {
	NATS         fileNATS       `yaml:"nats"`
	Embedded     fileEmbedded   `yaml:"embedded"`
	Metrics      fileMetrics    `yaml:"metrics"`
	Device       string         `yaml:"device"`
	DrainTimeout duration       `yaml:"drain_timeout"`
	CPUFallback  bool           `yaml:"cpu_fallback"`
	Pipelines    []filePipeline `yaml:"pipelines"`
}

type fileNATS struct {
	URL      string  `yaml:"url"`
	Creds    string  `yaml:"creds"`
	User     string  `yaml:"user"`
	Password string  `yaml:"password"`
	Token    string  `yaml:"token"`
	NKey     string  `yaml:"nkey"`
	TLS      fileTLS `yaml:"tls"`
	Name     string  `yaml:"name"`
}

type fileTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

type fileEmbedded struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
}

type fileMetrics struct {
	Addr string `yaml:"addr"`
}

type filePipeline struct {
	Name             string      `yaml:"name"`
	Kind             string      `yaml:"kind"`
	Subjects         []string    `yaml:"subjects"`
	Stream           string      `yaml:"stream"`
	Consumer         string      `yaml:"consumer"`
	Output           string      `yaml:"output"`
	OutputStream     string      `yaml:"output_stream"`
	OutputMode       string      `yaml:"output_mode"`
	DeadLetter       string      `yaml:"dead_letter"`
	DeadLetterStream string      `yaml:"dead_letter_stream"`
	Batch            fileBatch   `yaml:"batch"`
	Limits           fileLimits  `yaml:"limits"`
	Streams          fileStreams `yaml:"streams"`
	AckWait          duration    `yaml:"ack_wait"`
	MaxDeliver       int         `yaml:"max_deliver"`
	RetryBackoff     []duration  `yaml:"retry_backoff"`
	MaxAckPending    int         `yaml:"max_ack_pending"`
	MaxInflightBytes size        `yaml:"max_inflight_bytes"`
	Threads          int         `yaml:"threads"`
	InflightBatches  int         `yaml:"inflight_batches"`
	Image            *fileImage  `yaml:"image"`
	Text             *fileText   `yaml:"text"`
}

type fileBatch struct {
	MaxItems int      `yaml:"max_items"`
	MaxBytes size     `yaml:"max_bytes"`
	MaxWait  duration `yaml:"max_wait"`
}

type fileStreams struct {
	Replicas       int      `yaml:"replicas"`
	InputRetention string   `yaml:"input_retention"`
	InputMaxAge    duration `yaml:"input_max_age"`
	InputMaxBytes  size     `yaml:"input_max_bytes"`
	OutputMaxAge   duration `yaml:"output_max_age"`
	OutputMaxBytes size     `yaml:"output_max_bytes"`
}

type fileLimits struct {
	MaxBytes  size  `yaml:"max_bytes"`
	MaxPixels int64 `yaml:"max_pixels"`
}

type fileImage struct {
	Resize       int       `yaml:"resize"`
	Crop         int       `yaml:"crop"`
	Mean         []float64 `yaml:"mean"`
	Std          []float64 `yaml:"std"`
	Layout       string    `yaml:"layout"`
	DType        string    `yaml:"dtype"`
	DecodeMemory size      `yaml:"decode_memory"`
}

type fileText struct {
	Tokenizer   string `yaml:"tokenizer"`
	MaxLength   int    `yaml:"max_length"`
	Truncation  bool   `yaml:"truncation"`
	Padding     string `yaml:"padding"`
	InvalidUTF8 string `yaml:"invalid_utf8"`
	IDDType     string `yaml:"id_dtype"`
}
