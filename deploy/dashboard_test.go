package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func loadDashboard(t *testing.T) obj {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("grafana", "dashboards", "stoker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d obj
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	return d
}

// usage is one PromQL expression in the dashboard or the rules, with the
// text that refers to its labels (legend, annotations).
type usage struct {
	where     string
	expr      string
	labelRefs []string // label names the legend or annotations use
}

func dashboardUsages(t *testing.T) []usage {
	t.Helper()
	d := loadDashboard(t)
	var out []usage
	for _, v := range list(d, "templating", "list") {
		if q := str(v, "query", "query"); q != "" {
			out = append(out, usage{where: "variable " + str(v, "name"), expr: q})
		}
	}
	for _, p := range list(d, "panels") {
		for _, tg := range list(p, "targets") {
			u := usage{where: "panel " + str(p, "title"), expr: str(tg, "expr")}
			for _, m := range legendLabelRE.FindAllStringSubmatch(str(tg, "legendFormat"), -1) {
				u.labelRefs = append(u.labelRefs, m[1])
			}
			out = append(out, u)
		}
	}
	return out
}

// ruleGroups reads prometheus/rules.yml.
func ruleGroups(t *testing.T) []any {
	t.Helper()
	return list(yamlDocs(t, filepath.Join("prometheus", "rules.yml"))[0], "groups")
}

func ruleUsages(t *testing.T) (uses []usage, recorded map[string]bool) {
	t.Helper()
	recorded = map[string]bool{}
	for _, g := range ruleGroups(t) {
		for _, r := range list(g, "rules") {
			if name := str(r, "record"); name != "" {
				recorded[name] = true
				uses = append(uses, usage{where: "recording rule " + name, expr: str(r, "expr")})
				continue
			}
			u := usage{where: "alert " + str(r, "alert"), expr: str(r, "expr")}
			for _, a := range get(r, "annotations").(obj) {
				for _, m := range annotationLabelRE.FindAllStringSubmatch(a.(string), -1) {
					u.labelRefs = append(u.labelRefs, m[1])
				}
			}
			uses = append(uses, u)
		}
	}
	return uses, recorded
}

func TestDashboardLayout(t *testing.T) {
	d := loadDashboard(t)
	if str(d, "uid") == "" || str(d, "title") == "" {
		t.Error("dashboard without uid or title")
	}
	ids := map[int]bool{}
	type rect struct{ x, y, w, h int }
	var rects []rect
	titles := map[string]bool{}
	for _, p := range list(d, "panels") {
		id := num(t, p, "id")
		if ids[id] {
			t.Errorf("panel id %d repeated", id)
		}
		ids[id] = true
		r := rect{num(t, p, "gridPos", "x"), num(t, p, "gridPos", "y"), num(t, p, "gridPos", "w"), num(t, p, "gridPos", "h")}
		if r.x < 0 || r.w <= 0 || r.x+r.w > 24 || r.h <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", str(p, "title"), r)
		}
		for _, o := range rects {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				t.Errorf("panel %q at %+v overlaps another at %+v", str(p, "title"), r, o)
			}
		}
		rects = append(rects, r)
		if str(p, "type") == "row" {
			continue
		}
		titles[str(p, "title")] = true
		if str(p, "datasource", "uid") != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", str(p, "title"))
		}
		if len(list(p, "targets")) == 0 {
			t.Errorf("panel %q has no query", str(p, "title"))
		}
	}
	for _, u := range dashboardUsages(t) {
		if u.expr == "" || !balanced(u.expr) {
			t.Errorf("%s: expression %q is empty or unbalanced", u.where, u.expr)
		}
	}
	// The list: throughput, per-stage p50/p95/p99, GPU utilisation
	// and memory, lag, dead letters, batch sizes.
	for _, want := range []string{"Items settled per second", "Stage latency p50 per batch", "Stage latency p95 per batch",
		"Stage latency p99 per batch", "GPU utilisation (NVML)", "GPU memory", "Consumer lag (what KEDA scales on)",
		"Dead letters per second by reason", "Batch size (items)"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

func TestRuleFiles(t *testing.T) {
	groups := ruleGroups(t)
	op := yamlDocs(t, filepath.Join("k8s", "prometheusrule.yaml"))[0]
	if !reflect.DeepEqual(list(op, "spec", "groups"), groups) {
		t.Error("k8s/prometheusrule.yaml's groups differ from prometheus/rules.yml")
	}
	uses, recorded := ruleUsages(t)
	if len(recorded) == 0 {
		t.Error("no recording rules")
	}
	alerts := 0
	for _, g := range groups {
		for _, r := range list(g, "rules") {
			if str(r, "alert") == "" {
				continue
			}
			alerts++
			if str(r, "labels", "severity") == "" || str(r, "annotations", "summary") == "" {
				t.Errorf("alert %s needs a severity label and a summary", str(r, "alert"))
			}
		}
	}
	if alerts == 0 {
		t.Error("no alerts")
	}
	for _, u := range uses {
		if !balanced(u.expr) {
			t.Errorf("%s: unbalanced expression %q", u.where, u.expr)
		}
	}
}
