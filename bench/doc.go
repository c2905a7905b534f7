// Package bench measures stoker's preprocessing stage on its own: the
// harness behind `stoker bench`.
//
// It loads inputs (files, directories, one item per line, the bundled
// samples, or synthetic images and texts), runs a preprocess.Processor on
// them batch after batch for each device and batch size asked for, after a
// warm-up, and reports steady-state throughput (items/s and input MB/s, as
// the median of several measurement windows with their spread), per-batch
// latency percentiles and where the time went per stage (the stages a
// processor reports in preprocess.Batch.Timings). Reports carry the
// machine's facts (CPU, cores, Go, stoker version and commit, GPU and
// driver through NVML in a cuda build) and are written as an aligned table,
// JSON lines, one JSON document, Markdown, and a PNG or SVG plot.
//
// The end-to-end benchmark through NATS lives in bench/e2e.
package bench
