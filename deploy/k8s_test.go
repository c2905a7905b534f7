package deploy_test

import (
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stoker-ml/stoker/internal/config"
)

const namespace = "stoker"

// manifests are the Kubernetes objects under k8s/.
type manifests struct {
	objs  []obj
	files []string // relative to k8s/
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	var m manifests
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		rel, _ := filepath.Rel("k8s", p)
		m.files = append(m.files, filepath.ToSlash(rel))
		m.objs = append(m.objs, yamlDocs(t, p)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m manifests) kind(kind string) []obj {
	var out []obj
	for _, o := range m.objs {
		if str(o, "kind") == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifests) named(t *testing.T, kind, name string) obj {
	t.Helper()
	for _, o := range m.kind(kind) {
		if str(o, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("no %s named %q under k8s/", kind, name)
	return nil
}

// flagValue returns the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func stringsOf(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = strings.TrimSpace(toString(v))
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// worker is what the checks learn about one worker Deployment.
type worker struct {
	name        string
	podLabels   map[string]string
	cfg         *config.Config
	device      string
	metricsPort int
	container   obj
}

// workers checks each stoker Deployment on its own and returns them.
func workers(t *testing.T, m manifests) []worker {
	t.Helper()
	var out []worker
	for _, d := range m.kind("Deployment") {
		if str(d, "metadata", "labels", "app.kubernetes.io/name") != "stoker" {
			continue
		}
		name := str(d, "metadata", "name")
		w := worker{name: name, podLabels: strMap(d, "spec", "template", "metadata", "labels")}
		if !subset(strMap(d, "spec", "selector", "matchLabels"), w.podLabels) {
			t.Errorf("%s: selector %v does not match the pod labels %v", name, strMap(d, "spec", "selector", "matchLabels"), w.podLabels)
		}
		if get(d, "spec", "replicas") != nil {
			t.Errorf("%s: spec.replicas is set; KEDA owns the replica count and kubectl apply would reset it", name)
		}
		pod := get(d, "spec", "template", "spec")
		for _, c := range list(pod, "containers") {
			if str(c, "name") == "stoker" {
				w.container = c.(obj)
			}
		}
		if w.container == nil {
			t.Fatalf("%s: no container named stoker", name)
		}
		args := stringsOf(list(w.container, "args"))
		if len(args) == 0 || args[0] != "serve" {
			t.Fatalf("%s: args %q do not run `stoker serve`", name, args)
		}

		// The configuration comes from the ConfigMap mounted at its directory.
		cfgPath, ok := flagValue(args, "config")
		if !ok {
			t.Fatalf("%s: no --config", name)
		}
		var volume string
		for _, vm := range list(w.container, "volumeMounts") {
			if str(vm, "mountPath") == path.Dir(cfgPath) {
				volume = str(vm, "name")
			}
		}
		var cmName string
		for _, v := range list(pod, "volumes") {
			if str(v, "name") == volume {
				cmName = str(v, "configMap", "name")
			}
		}
		if cmName == "" {
			t.Fatalf("%s: --config %s is not in a mounted ConfigMap", name, cfgPath)
		}
		data := str(m.named(t, "ConfigMap", cmName), "data", path.Base(cfgPath))
		if data == "" {
			t.Fatalf("%s: ConfigMap %s has no key %s", name, cmName, path.Base(cfgPath))
		}
		cfg, err := config.Parse([]byte(data), cmName+"/"+path.Base(cfgPath))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w.cfg = cfg

		// Flags override the file, as serve does.
		w.device = cfg.Device
		if v, ok := flagValue(args, "device"); ok {
			w.device = v
		}
		addr := cfg.Metrics.Addr
		if v, ok := flagValue(args, "metrics-addr"); ok {
			addr = v
			if portOf(t, v) != portOf(t, cfg.Metrics.Addr) {
				t.Errorf("%s: --metrics-addr %s and the file's metrics.addr %s disagree", name, v, cfg.Metrics.Addr)
			}
		}
		if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
			t.Errorf("%s: metrics address %s is not reachable from outside the pod (want 0.0.0.0)", name, addr)
		}
		w.metricsPort = portOf(t, addr)
		found := false
		for _, p := range list(w.container, "ports") {
			if str(p, "name") == "metrics" {
				found = true
				if n := num(t, p, "containerPort"); n != w.metricsPort {
					t.Errorf("%s: containerPort %d, the worker listens on %d", name, n, w.metricsPort)
				}
			}
		}
		if !found {
			t.Errorf("%s: no container port named metrics", name)
		}

		for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			if got := str(w.container, probe, "httpGet", "path"); got != want {
				t.Errorf("%s: %s path %q, want %q", name, probe, got, want)
			}
			port := get(w.container, probe, "httpGet", "port")
			if port != "metrics" && port != w.metricsPort {
				t.Errorf("%s: %s on port %v, not the metrics port", name, probe, port)
			}
		}

		grace := time.Duration(num(t, pod, "terminationGracePeriodSeconds")) * time.Second
		if grace <= cfg.DrainTimeout {
			t.Errorf("%s: terminationGracePeriodSeconds %v is not longer than drain_timeout %v", name, grace, cfg.DrainTimeout)
		}

		if get(pod, "securityContext", "runAsNonRoot") != true || num(t, pod, "securityContext", "runAsUser") == 0 {
			t.Errorf("%s: the pod must run as a non-root user", name)
		}
		if get(w.container, "securityContext", "readOnlyRootFilesystem") != true {
			t.Errorf("%s: root filesystem is writable", name)
		}

		gpuReq := get(w.container, "resources", "requests", "nvidia.com/gpu")
		gpuLim := get(w.container, "resources", "limits", "nvidia.com/gpu")
		switch w.device {
		case "cuda":
			if gpuReq == nil || gpuLim == nil {
				t.Errorf("%s: device cuda without nvidia.com/gpu requests and limits", name)
			}
			hasGPUSelector := false
			for k := range strMap(pod, "nodeSelector") {
				hasGPUSelector = hasGPUSelector || strings.Contains(k, "nvidia.com/gpu")
			}
			if !hasGPUSelector {
				t.Errorf("%s: device cuda without a GPU node selector", name)
			}
			if !strings.HasSuffix(str(w.container, "image"), "-cuda") {
				t.Errorf("%s: device cuda on image %s, want the -cuda image", name, str(w.container, "image"))
			}
		case "cpu":
			if gpuReq != nil || gpuLim != nil {
				t.Errorf("%s: a CPU worker holds a GPU", name)
			}
		default:
			t.Errorf("%s: device %q: say cpu or cuda in a Deployment", name, w.device)
		}
		out = append(out, w)
	}
	if len(out) != 2 {
		t.Fatalf("found %d stoker worker Deployments, want 2 (CPU and GPU)", len(out))
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)

	t.Run("metadata", func(t *testing.T) {
		for _, o := range m.objs {
			kind, name := str(o, "kind"), str(o, "metadata", "name")
			if kind == "" || str(o, "apiVersion") == "" {
				t.Errorf("object without kind or apiVersion: %v", o)
			}
			switch kind {
			case "Kustomization":
			case "Namespace":
				if name != namespace {
					t.Errorf("Namespace %q, want %q", name, namespace)
				}
			default:
				if name == "" || str(o, "metadata", "namespace") != namespace {
					t.Errorf("%s %q: not in namespace %s", kind, name, namespace)
				}
			}
		}
	})

	t.Run("kustomization lists every manifest", func(t *testing.T) {
		k := m.kind("Kustomization")
		if len(k) != 1 {
			t.Fatalf("%d Kustomizations", len(k))
		}
		got := stringsOf(list(k[0], "resources"))
		want := slices.DeleteFunc(slices.Clone(m.files), func(f string) bool { return f == "kustomization.yaml" })
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("resources %q, files %q", got, want)
		}
	})

	ws := workers(t, m)

	t.Run("metrics service and monitor", func(t *testing.T) {
		svc := m.named(t, "Service", "stoker-metrics")
		sel := strMap(svc, "spec", "selector")
		var portName string
		for _, w := range ws {
			if !subset(sel, w.podLabels) {
				t.Errorf("Service selector %v misses %s's pods %v", sel, w.name, w.podLabels)
			}
			ports := list(svc, "spec", "ports")
			if len(ports) != 1 {
				t.Fatalf("Service has %d ports, want 1", len(ports))
			}
			portName = str(ports[0], "name")
			if n := num(t, ports[0], "port"); n != w.metricsPort {
				t.Errorf("Service port %d, %s listens on %d", n, w.name, w.metricsPort)
			}
			if tp := get(ports[0], "targetPort"); tp != "metrics" && tp != w.metricsPort {
				t.Errorf("Service targetPort %v is not %s's metrics port", tp, w.name)
			}
		}
		for _, sm := range m.kind("ServiceMonitor") {
			if !subset(strMap(sm, "spec", "selector", "matchLabels"), strMap(svc, "metadata", "labels")) {
				t.Errorf("ServiceMonitor %s does not select Service stoker-metrics", str(sm, "metadata", "name"))
			}
			for _, ep := range list(sm, "spec", "endpoints") {
				if str(ep, "port") != portName || str(ep, "path") != "/metrics" {
					t.Errorf("ServiceMonitor endpoint port %q path %q, want %q /metrics", str(ep, "port"), str(ep, "path"), portName)
				}
			}
		}
		if len(m.kind("ServiceMonitor")) == 0 {
			t.Error("no ServiceMonitor")
		}
	})

	t.Run("keda scales every pipeline on its consumer", func(t *testing.T) {
		defaults := map[string]config.Pipeline{}
		for _, p := range config.Default().Pipelines {
			defaults[p.Name] = p
		}
		scaled := map[string]bool{}
		for _, so := range m.kind("ScaledObject") {
			name := str(so, "metadata", "name")
			target := str(so, "spec", "scaleTargetRef", "name")
			var w *worker
			for i := range ws {
				if ws[i].name == target {
					w = &ws[i]
				}
			}
			if w == nil {
				t.Errorf("ScaledObject %s targets %q, not a worker Deployment", name, target)
				continue
			}
			scaled[target] = true
			if num(t, so, "spec", "minReplicaCount") != 0 {
				t.Errorf("%s: minReplicaCount is not 0 (no scale to zero)", name)
			}
			maxReplicas := num(t, so, "spec", "maxReplicaCount")
			triggers := list(so, "spec", "triggers")
			if len(triggers) != len(w.cfg.Pipelines) {
				t.Errorf("%s: %d triggers for %d pipelines", name, len(triggers), len(w.cfg.Pipelines))
			}
			for _, p := range w.cfg.Pipelines {
				var trig any
				for _, tr := range triggers {
					if str(tr, "metadata", "consumer") == p.Consumer {
						trig = tr
					}
				}
				if trig == nil {
					t.Errorf("%s: no trigger on pipeline %s's consumer %s", name, p.Name, p.Consumer)
					continue
				}
				if str(trig, "type") != "nats-jetstream" {
					t.Errorf("%s: trigger type %q, want nats-jetstream", name, str(trig, "type"))
				}
				if s := str(trig, "metadata", "stream"); s != p.Stream {
					t.Errorf("%s: trigger stream %q, pipeline %s reads %q", name, s, p.Name, p.Stream)
				}
				if d, ok := defaults[p.Name]; ok && (d.Stream != p.Stream || d.Consumer != p.Consumer) {
					t.Errorf("%s: pipeline %s uses %s/%s, the defaults are %s/%s", name, p.Name, p.Stream, p.Consumer, d.Stream, d.Consumer)
				}
				for _, key := range []string{"lagThreshold", "activationLagThreshold"} {
					if n, err := strconv.Atoi(str(trig, "metadata", key)); err != nil || n < 0 {
						t.Errorf("%s: %s %q is not a count", name, key, str(trig, "metadata", key))
					}
				}
				// max_ack_pending is per consumer, shared by every replica.
				if need := maxReplicas * p.Batch.MaxItems; p.MaxAckPending < need {
					t.Errorf("%s: pipeline %s max_ack_pending %d < maxReplicaCount %d x batch.max_items %d: replicas would idle", name, p.Name, p.MaxAckPending, maxReplicas, p.Batch.MaxItems)
				}
				checkMonitoringEndpoint(t, m, str(trig, "metadata", "natsServerMonitoringEndpoint"))
			}
		}
		for _, w := range ws {
			if !scaled[w.name] {
				t.Errorf("no ScaledObject for %s", w.name)
			}
		}
	})

	t.Run("disruption budgets", func(t *testing.T) {
		covered := map[string]bool{}
		for _, pdb := range m.kind("PodDisruptionBudget") {
			sel := strMap(pdb, "spec", "selector", "matchLabels")
			matched := 0
			for _, o := range append(m.kind("Deployment"), m.kind("StatefulSet")...) {
				if subset(sel, strMap(o, "spec", "template", "metadata", "labels")) {
					matched++
					covered[str(o, "metadata", "name")] = true
				}
			}
			if matched != 1 {
				t.Errorf("PodDisruptionBudget %s selects %d workloads, want 1", str(pdb, "metadata", "name"), matched)
			}
			if get(pdb, "spec", "minAvailable") != nil {
				t.Errorf("PodDisruptionBudget %s uses minAvailable; with scale to zero use maxUnavailable", str(pdb, "metadata", "name"))
			}
		}
		for _, o := range append(m.kind("Deployment"), m.kind("StatefulSet")...) {
			if !covered[str(o, "metadata", "name")] {
				t.Errorf("%s has no PodDisruptionBudget", str(o, "metadata", "name"))
			}
		}
	})

	t.Run("nats cluster", func(t *testing.T) {
		checkNATSCluster(t, m, ws)
	})
}

// checkMonitoringEndpoint checks KEDA's endpoint is host:port of a
// headless Service in front of the NATS StatefulSet, on its monitor port.
func checkMonitoringEndpoint(t *testing.T, m manifests, endpoint string) {
	t.Helper()
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Errorf("natsServerMonitoringEndpoint %q: %v", endpoint, err)
		return
	}
	svcName, rest, _ := strings.Cut(host, ".")
	if rest != namespace+".svc.cluster.local" {
		t.Errorf("natsServerMonitoringEndpoint %q is not <service>.%s.svc.cluster.local", endpoint, namespace)
	}
	svc := m.named(t, "Service", svcName)
	if str(svc, "spec", "clusterIP") != "None" {
		t.Errorf("KEDA must reach the consumer leader by pod name: Service %s must be headless", svcName)
	}
	sts := m.named(t, "StatefulSet", "nats")
	if str(sts, "spec", "serviceName") != svcName {
		t.Errorf("StatefulSet nats's serviceName %q, KEDA uses %q", str(sts, "spec", "serviceName"), svcName)
	}
	ok := false
	for _, p := range list(svc, "spec", "ports") {
		if strconv.Itoa(num(t, p, "port")) == port && str(p, "name") == "monitor" {
			ok = true
		}
	}
	if !ok {
		t.Errorf("Service %s has no monitor port %s", svcName, port)
	}
}

func checkNATSCluster(t *testing.T, m manifests, ws []worker) {
	conf, err := os.ReadFile(filepath.Join("nats", "cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := str(m.named(t, "ConfigMap", "nats-config"), "data", "nats.conf"); got != string(conf) {
		t.Errorf("ConfigMap nats-config's nats.conf differs from nats/cluster.conf")
	}
	sts := m.named(t, "StatefulSet", "nats")
	replicas := num(t, sts, "spec", "replicas")
	if replicas != 3 {
		t.Errorf("NATS StatefulSet has %d replicas, want 3", replicas)
	}
	c := get(sts, "spec", "template", "spec", "containers", 0)
	var nameFromPod bool
	for _, e := range list(c, "env") {
		nameFromPod = nameFromPod || (str(e, "name") == "SERVER_NAME" && str(e, "valueFrom", "fieldRef", "fieldPath") == "metadata.name")
	}
	if !nameFromPod {
		t.Error("NATS pods must take SERVER_NAME from metadata.name (KEDA finds the leader by it)")
	}
	headless := str(sts, "spec", "serviceName")
	containerPorts := map[string]int{}
	for _, p := range list(c, "ports") {
		containerPorts[str(p, "name")] = num(t, p, "containerPort")
	}

	for i := range replicas {
		podName := "nats-" + strconv.Itoa(i)
		t.Setenv("SERVER_NAME", podName)
		o, err := server.ProcessConfigFile(filepath.Join("nats", "cluster.conf"))
		if err != nil {
			t.Fatalf("nats/cluster.conf: %v", err)
		}
		if o.ServerName != podName || !o.JetStream || o.Cluster.Name == "" {
			t.Errorf("server_name %q (want %q), jetstream %v, cluster %q", o.ServerName, podName, o.JetStream, o.Cluster.Name)
		}
		if o.Port != containerPorts["client"] || o.Cluster.Port != containerPorts["cluster"] || o.HTTPPort != containerPorts["monitor"] {
			t.Errorf("ports client %d cluster %d monitor %d, container ports %v", o.Port, o.Cluster.Port, o.HTTPPort, containerPorts)
		}
		var routes []string
		for _, r := range o.Routes {
			routes = append(routes, r.Host)
		}
		var want []string
		for j := range replicas {
			want = append(want, "nats-"+strconv.Itoa(j)+"."+headless+"."+namespace+".svc.cluster.local:"+strconv.Itoa(containerPorts["cluster"]))
		}
		if !slices.Equal(routes, want) {
			t.Errorf("routes %q, want %q", routes, want)
		}
		if o.MaxPayload < 1<<20 {
			t.Errorf("max_payload %d is below 1 MiB", o.MaxPayload)
		}
	}

	// Workers connect to the client Service.
	client := m.named(t, "Service", "nats")
	clientPort := num(t, list(client, "spec", "ports")[0], "port")
	for _, w := range ws {
		url := w.cfg.NATS.URL
		want := "nats://nats." + namespace + ".svc.cluster.local:" + strconv.Itoa(clientPort)
		if url != want {
			t.Errorf("%s connects to %q, want %q", w.name, url, want)
		}
	}

	// The local stack's single server parses too.
	if o, err := server.ProcessConfigFile(filepath.Join("nats", "local.conf")); err != nil || !o.JetStream {
		t.Errorf("nats/local.conf: %v (jetstream %v)", err, o != nil && o.JetStream)
	}
}
