// Package httpapi serves stoker's operational endpoints: /metrics
// (Prometheus exposition of the registry it is given), /healthz (the
// process is alive) and /readyz (every pipeline is running and the broker
// connection is up).
package httpapi
