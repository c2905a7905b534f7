package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Stage names used as the "stage" label of StageSeconds.
const (
	StageQueueWait = "queue_wait" // first arrival in the batch until the batch closes
	StageDecode    = "decode"     // decode or tokenise on the CPU
	StageTransform = "transform"  // resize, crop and normalise on the CPU
	StageUpload    = "upload"     // host to device copy
	StageKernel    = "kernel"     // device compute
	StageDownload  = "download"   // device to host copy
	StageProcess   = "process"    // the whole preprocessing of a batch
	StageEncode    = "encode"     // safetensors encoding
	StagePublish   = "publish"    // publish until the stream's acknowledgement
)

// Outcomes used as the "outcome" label of ItemsTotal.
const (
	OutcomeOK         = "ok"
	OutcomeDeadLetter = "dead_letter"
	OutcomeRetry      = "retry"
)

// Reasons of FailuresTotal and DeadLettersTotal besides the bad-input codes
// (preprocess.Reason*) and the codes a whole-batch failure carries (a GPU's,
// kernels.Reason*).
const (
	ReasonTransient  = "transient"   // a failure that may pass; the item is retried
	ReasonMaxDeliver = "max_deliver" // retried until its deliveries ran out
)

// Metrics holds every metric family.
type Metrics struct {
	ItemsTotal        *prometheus.CounterVec   // pipeline, device, outcome
	ItemBytesTotal    *prometheus.CounterVec   // pipeline: raw input bytes
	OutputBytesTotal  *prometheus.CounterVec   // pipeline: tensor payload bytes published
	BatchesTotal      *prometheus.CounterVec   // pipeline, device, trigger
	BatchItems        *prometheus.HistogramVec // pipeline: items per batch
	FailuresTotal     *prometheus.CounterVec   // pipeline, reason
	DeadLettersTotal  *prometheus.CounterVec   // pipeline, reason
	RedeliveriesTotal *prometheus.CounterVec   // pipeline
	StageSeconds      *prometheus.HistogramVec // pipeline, device, stage
	EndToEndSeconds   *prometheus.HistogramVec // pipeline: input publish to output acknowledged
	InflightBytes     *prometheus.GaugeVec     // pipeline: raw bytes held by the worker
	ConsumerPending   *prometheus.GaugeVec     // pipeline: messages not yet delivered
	ConsumerAckPend   *prometheus.GaugeVec     // pipeline: delivered, not acknowledged
	PullFailing       *prometheus.GaugeVec     // pipeline: seconds pulls have failed in a row
	Up                *prometheus.GaugeVec     // pipeline: 1 while the pipeline runs

	// Drift signals, updated by ObserveBatch (see drift.go).
	ImageChannelMean       *prometheus.GaugeVec     // pipeline, channel (r, g, b)
	ImageChannelStd        *prometheus.GaugeVec     // pipeline, channel (r, g, b)
	ImageHeightPixels      *prometheus.HistogramVec // pipeline: input height before resizing
	ImageWidthPixels       *prometheus.HistogramVec // pipeline: input width before resizing
	TextItemTokens         *prometheus.HistogramVec // pipeline: tokens per item
	TextTokensTotal        *prometheus.CounterVec   // pipeline
	TextUnknownTokensTotal *prometheus.CounterVec   // pipeline: needs SetUnknownTokenID

	// GPU is the NVML reader registered by New (see gpu.go).
	GPU *GPUCollector

	drift *drift
}

// New creates the families and registers them on reg, together with a
// GPUCollector (NVML readings at scrape time; without NVML it exports only
// stoker_gpu_nvml_available 0).
func New(reg prometheus.Registerer) *Metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		ItemsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_items_total", Help: "Items settled, by outcome (ok: published and acked; dead_letter: terminated; retry: handed back for redelivery).",
		}, []string{"pipeline", "device", "outcome"}),
		ItemBytesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_item_bytes_total", Help: "Raw input bytes received.",
		}, []string{"pipeline"}),
		OutputBytesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_output_bytes_total", Help: "Bytes of tensor messages published.",
		}, []string{"pipeline"}),
		BatchesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_batches_total", Help: "Batches dispatched, by the trigger that closed them (max_items, max_bytes, max_wait, flush).",
		}, []string{"pipeline", "device", "trigger"}),
		BatchItems: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoker_batch_items", Help: "Items per dispatched batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, []string{"pipeline"}),
		FailuresTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_failures_total", Help: "Item failures by reason (bad-input codes, transient, gpu_out_of_memory, gpu_lost, max_deliver).",
		}, []string{"pipeline", "reason"}),
		DeadLettersTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_dead_letters_total", Help: "Items published to the dead-letter subject, by reason.",
		}, []string{"pipeline", "reason"}),
		RedeliveriesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoker_redeliveries_total", Help: "Items received that had been delivered before.",
		}, []string{"pipeline"}),
		StageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoker_stage_seconds", Help: "Time per batch spent in each stage (queue_wait, decode, upload, kernel, download, process, encode, publish).",
			Buckets: latency,
		}, []string{"pipeline", "device", "stage"}),
		EndToEndSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoker_end_to_end_seconds", Help: "From the input message's publish time to its tensor's acknowledgement.",
			Buckets: latency,
		}, []string{"pipeline"}),
		InflightBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoker_inflight_bytes", Help: "Raw input bytes held by this worker (fetched, not yet settled).",
		}, []string{"pipeline"}),
		ConsumerPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoker_consumer_pending_messages", Help: "Messages in the stream not yet delivered to the pipeline's consumer.",
		}, []string{"pipeline"}),
		ConsumerAckPend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoker_consumer_ack_pending_messages", Help: "Messages delivered to the pipeline's consumer and not yet acknowledged.",
		}, []string{"pipeline"}),
		PullFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoker_consumer_pull_failing_seconds", Help: "How long pull requests to the pipeline's consumer have failed in a row; 0 while they succeed.",
		}, []string{"pipeline"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoker_pipeline_up", Help: "1 while the pipeline is running.",
		}, []string{"pipeline"}),
	}
	reg.MustRegister(m.ItemsTotal, m.ItemBytesTotal, m.OutputBytesTotal, m.BatchesTotal, m.BatchItems,
		m.FailuresTotal, m.DeadLettersTotal, m.RedeliveriesTotal, m.StageSeconds, m.EndToEndSeconds,
		m.InflightBytes, m.ConsumerPending, m.ConsumerAckPend, m.PullFailing, m.Up)
	reg.MustRegister(m.newDriftFamilies()...)
	m.GPU = NewGPUCollector()
	reg.MustRegister(m.GPU)
	return m
}
