// Package deploy holds what it takes to run stoker outside a laptop:
// container builds (Dockerfile, Dockerfile.cuda, deploy.mk), Kubernetes
// manifests (k8s/: worker Deployments, ConfigMap, Service, ServiceMonitor,
// PrometheusRule, KEDA ScaledObjects, PodDisruptionBudgets, a 3-node NATS
// JetStream StatefulSet), the local stack (compose.yaml), Prometheus
// configuration and rules (prometheus/), and the Grafana dashboard
// (grafana/). The README's Operations section explains how to operate it.
//
// The package has no Go code of its own: its tests parse every file here
// and cross-check names, ports, probes, labels and every metric the
// dashboard and rules use against the /metrics of a worker started in the
// test process. They need neither Docker nor a cluster.
package deploy
