// Package metrics defines every Prometheus metric stoker exports. The
// families are created once, registered on a registry the caller passes in
// (no global state), and handed to the worker, which records into them.
//
// Names follow Prometheus conventions: the stoker_ prefix, _total for
// counters, _seconds and _bytes for units. Labels are few and bounded:
// pipeline (from the config), device (cpu or cuda), stage, trigger and
// reason (fixed sets of values).
//
// Besides the worker's own families, New registers two kinds of signals:
//
//   - Drift signals (drift.go), updated by Metrics.ObserveBatch from each
//     processed batch: running per-channel mean and standard deviation of
//     the image tensor, input image sizes, tokens per text item, and the
//     share of [UNK] tokens (after SetUnknownTokenID).
//   - GPU readings (gpu.go), read through NVML at scrape time by a
//     GPUCollector. NVML is loaded at run time, and only in builds with the
//     cuda tag (go-nvml needs cgo); elsewhere, or without the NVIDIA
//     driver, the collector exports stoker_gpu_nvml_available 0 and nothing
//     else. Nothing fails when NVML is missing.
//
// The README's Operations section lists every family with its labels, and the PromQL
// that finds a bottleneck or raises an alert.
package metrics
