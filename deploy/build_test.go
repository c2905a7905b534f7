package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/config"
)

// dockerfile is a Dockerfile split into its stages.
type dockerfile struct {
	argDefaults map[string]string // global ARGs before the first FROM
	stages      []stage
}

type stage struct {
	from  string
	lines []string // instructions after FROM, continuation lines joined
}

func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	d := dockerfile{argDefaults: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.stages = append(d.stages, stage{from: strings.Fields(rest)[0]})
		case "ARG":
			if len(d.stages) == 0 {
				k, v, _ := strings.Cut(rest, "=")
				d.argDefaults[k] = v
				continue
			}
			fallthrough
		default:
			if len(d.stages) == 0 {
				t.Fatalf("%s: %q before the first FROM", path, line)
			}
			s := &d.stages[len(d.stages)-1]
			s.lines = append(s.lines, line)
		}
	}
	if len(d.stages) == 0 {
		t.Fatalf("%s: no FROM", path)
	}
	return d
}

// expand replaces ${ARG} with the global defaults.
func (d dockerfile) expand(s string) string {
	return regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(s, func(m string) string {
		return d.argDefaults[m[2:len(m)-1]]
	})
}

func (s stage) find(prefix string) []string {
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), prefix+" ") {
			out = append(out, strings.TrimSpace(l[len(prefix):]))
		}
	}
	return out
}

func (s stage) contains(sub string) bool {
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func goVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

func TestDockerfiles(t *testing.T) {
	cases := []struct {
		file        string
		finalBase   []string // one must prefix the last FROM
		buildNeeds  []string // in some build-stage line
		finalNeeds  []string // in some final-stage line
		cmdFragment string
	}{
		{"Dockerfile", []string{"debian:bookworm"},
			[]string{"-tags turbojpeg", "libturbojpeg0-dev", "CGO_ENABLED=1", "./cmd/stoker"}, []string{"libturbojpeg0"}, `"--metrics-addr", "0.0.0.0:9090"`},
		{"Dockerfile.cuda", []string{"nvidia/cuda:"},
			[]string{"-tags cuda", "libturbojpeg0-dev", "CGO_ENABLED=1", "./cmd/stoker"}, []string{"libturbojpeg"}, `"--device", "cuda", "--metrics-addr", "0.0.0.0:9090"`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			d := readDockerfile(t, tc.file)
			if got, want := d.argDefaults["GO_VERSION"], goVersion(t); got != want {
				t.Errorf("GO_VERSION %q, go.mod says %q", got, want)
			}
			final := d.stages[len(d.stages)-1]
			base := d.expand(final.from)
			// A cgo binary needs the glibc and libturbojpeg it was linked
			// against: the build stage runs the final stage's Debian release.
			if release, ok := strings.CutPrefix(base, "debian:"); ok {
				release, _, _ = strings.Cut(release, "-")
				if build := d.expand(d.stages[0].from); !strings.HasSuffix(strings.Fields(build)[0], "-"+release) {
					t.Errorf("build stage %s is not Debian %s, the final image's release", build, release)
				}
			}
			ok := false
			for _, b := range tc.finalBase {
				ok = ok || strings.HasPrefix(base, b)
			}
			if !ok {
				t.Errorf("final image %s, want one of %q", base, tc.finalBase)
			}
			for _, need := range tc.buildNeeds {
				found := false
				for _, s := range d.stages[:len(d.stages)-1] {
					found = found || s.contains(need)
				}
				if !found {
					t.Errorf("no build stage contains %q", need)
				}
			}
			for _, need := range tc.finalNeeds {
				if !final.contains(need) {
					t.Errorf("final stage lacks %q", need)
				}
			}
			users := final.find("USER")
			if len(users) == 0 {
				t.Fatal("final stage has no USER: it would run as root")
			}
			uid, _, _ := strings.Cut(users[len(users)-1], ":")
			if n, err := strconv.Atoi(uid); uid == "root" || (err == nil && n == 0) {
				t.Errorf("final USER %q is root", users[len(users)-1])
			}
			if exp := final.find("EXPOSE"); len(exp) != 1 || exp[0] != "9090" {
				t.Errorf("EXPOSE %q, want 9090 (the metrics port)", exp)
			}
			if cmd := final.find("CMD"); len(cmd) != 1 || !strings.Contains(cmd[0], tc.cmdFragment) {
				t.Errorf("CMD %q lacks %s", cmd, tc.cmdFragment)
			}
			if _, err := os.Stat(tc.file + ".dockerignore"); err != nil {
				t.Errorf("no %s.dockerignore: the whole checkout would be sent as build context", tc.file)
			}
		})
	}
	if _, err := os.Stat(filepath.Join("..", "cmd", "stoker")); err != nil {
		t.Errorf("the images build ./cmd/stoker: %v", err)
	}
}

func TestMakeTargets(t *testing.T) {
	data, err := os.ReadFile("deploy.mk")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(data)
	for target, dockerfile := range map[string]string{"image": "deploy/Dockerfile ", "image-cuda": "deploy/Dockerfile.cuda "} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:\s*\n((?:\t.*\n)+)`)
		m := re.FindStringSubmatch(mk)
		if m == nil {
			t.Errorf("deploy.mk has no %s target", target)
			continue
		}
		if !strings.Contains(m[1], "-f "+dockerfile) {
			t.Errorf("target %s does not build %s: %q", target, dockerfile, m[1])
		}
	}
}

func TestComposeStack(t *testing.T) {
	docs := yamlDocs(t, "compose.yaml")
	c := docs[0]
	for _, s := range []string{"nats", "stoker", "prometheus", "grafana"} {
		if get(c, "services", s) == nil {
			t.Errorf("compose.yaml has no %s service", s)
		}
	}
	stoker := get(c, "services", "stoker")
	if df := str(stoker, "build", "dockerfile"); df != "deploy/Dockerfile" || str(stoker, "build", "context") != ".." {
		t.Errorf("stoker builds %q in %q, want deploy/Dockerfile in ..", df, str(stoker, "build", "context"))
	}
	args := stringsOf(list(stoker, "command"))
	natsURL, _ := flagValue(args, "nats")
	if natsURL != "nats://nats:4222" {
		t.Errorf("stoker --nats %q, want the nats service nats://nats:4222", natsURL)
	}
	addr, ok := flagValue(args, "metrics-addr")
	if !ok || !strings.HasPrefix(addr, "0.0.0.0:") {
		t.Fatalf("stoker --metrics-addr %q: must listen on 0.0.0.0", addr)
	}
	port := portOf(t, addr)
	grace, err := time.ParseDuration(str(stoker, "stop_grace_period"))
	if err != nil || grace <= config.Default().DrainTimeout {
		t.Errorf("stop_grace_period %q is not longer than the default drain_timeout %v", str(stoker, "stop_grace_period"), config.Default().DrainTimeout)
	}

	// Every bind-mounted file exists; remember where each lands.
	mounts := map[string]string{} // container path → host path
	for name, svc := range get(c, "services").(obj) {
		for _, v := range list(svc, "volumes") {
			src, dst, _ := strings.Cut(toString(v), ":")
			dst, _, _ = strings.Cut(dst, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
				mounts[dst] = src
			}
		}
	}

	// Prometheus scrapes the stoker service's metrics port and loads the rules.
	prom := yamlDocs(t, filepath.Join("prometheus", "prometheus.yml"))[0]
	var targets []string
	for _, sc := range list(prom, "scrape_configs") {
		if str(sc, "job_name") == "stoker" {
			targets = stringsOf(list(sc, "static_configs", 0, "targets"))
		}
	}
	if want := "stoker:" + strconv.Itoa(port); len(targets) != 1 || targets[0] != want {
		t.Errorf("Prometheus scrapes %q, want %q", targets, want)
	}
	for _, rf := range stringsOf(list(prom, "rule_files")) {
		if mounts[rf] != "./prometheus/rules.yml" {
			t.Errorf("Prometheus loads %s, which is not the mounted ./prometheus/rules.yml", rf)
		}
	}

	// Grafana: the dashboard directory the provider reads is the mounted one,
	// and the provisioned data source is the dashboard's default.
	prov := yamlDocs(t, filepath.Join("grafana", "provisioning", "dashboards", "stoker.yaml"))[0]
	if p := str(prov, "providers", 0, "options", "path"); mounts[p] != "./grafana/dashboards" {
		t.Errorf("dashboard provider reads %s, which is not the mounted ./grafana/dashboards", p)
	}
	if mounts["/etc/grafana/provisioning"] != "./grafana/provisioning" {
		t.Errorf("Grafana's provisioning directory is not mounted")
	}
	ds := yamlDocs(t, filepath.Join("grafana", "provisioning", "datasources", "prometheus.yaml"))[0]
	if u := str(ds, "datasources", 0, "url"); u != "http://prometheus:9090" {
		t.Errorf("data source URL %q, want the prometheus service", u)
	}
	dash := loadDashboard(t)
	for _, v := range list(dash, "templating", "list") {
		if str(v, "name") == "datasource" && str(v, "current", "value") != str(ds, "datasources", 0, "uid") {
			t.Errorf("dashboard's default data source %q is not the provisioned uid %q", str(v, "current", "value"), str(ds, "datasources", 0, "uid"))
		}
	}
}
