package deploy_test

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// A metricRef is one use of a metric in a PromQL expression.
type metricRef struct {
	name     string
	matchers []matcher
}

type matcher struct {
	label, op, value string
}

var (
	// Metric names stoker exports start with stoker_; recorded series
	// contain a colon (level:metric:operations).
	metricRE  = regexp.MustCompile(`\b((?:[a-z_]+:)?stoker_[a-z0-9_]+(?::[a-z0-9_]+)?)\s*(\{[^}]*\})?`)
	matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*$`)
	groupRE   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	// label_values(metric, label) in Grafana variable queries.
	labelValuesRE = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	// Template references: {{ $labels.x }} in rule annotations, {{x}} in
	// Grafana legends.
	annotationLabelRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	legendLabelRE     = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// parseRefs finds the metrics an expression uses, with their matchers.
func parseRefs(t *testing.T, expr string) []metricRef {
	t.Helper()
	var out []metricRef
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		r := metricRef{name: m[1]}
		if sel := strings.Trim(m[2], "{}"); strings.TrimSpace(sel) != "" {
			for _, part := range strings.Split(sel, ",") {
				mm := matcherRE.FindStringSubmatch(part)
				if mm == nil {
					t.Errorf("expression %q: cannot read matcher %q", expr, part)
					continue
				}
				r.matchers = append(r.matchers, matcher{mm[1], mm[2], mm[3]})
			}
		}
		out = append(out, r)
	}
	for _, m := range labelValuesRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, metricRef{name: m[1], matchers: []matcher{{label: m[2], op: "label_values"}}})
	}
	return out
}

// groupingLabels lists the labels of by/on/without/ignoring clauses.
func groupingLabels(expr string) []string {
	var out []string
	for _, m := range groupRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// balanced reports whether (), [] and {} nest properly outside strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

func TestParseRefs(t *testing.T) {
	cases := []struct {
		name   string
		expr   string
		want   []string // name and matchers, as "name label op value ..."
		groups []string
	}{
		{"plain", `stoker_pipeline_up == 0`, []string{"stoker_pipeline_up"}, nil},
		{"histogram quantile",
			`histogram_quantile(0.99, sum by (pipeline, le) (rate(stoker_end_to_end_seconds_bucket{pipeline=~"$pipeline"}[5m])))`,
			[]string{`stoker_end_to_end_seconds_bucket pipeline =~ $pipeline`}, []string{"le", "pipeline"}},
		{"two matchers and on",
			`a and on (instance) count by (instance) (stoker_stage_seconds_count{device="cuda", stage!="process"})`,
			[]string{`stoker_stage_seconds_count device = cuda stage != process`}, []string{"instance"}},
		{"recorded series", `pipeline:stoker_consumer_lag:messages > 10`, []string{"pipeline:stoker_consumer_lag:messages"}, nil},
		{"grafana variable", `label_values(stoker_pipeline_up, pipeline)`, []string{"stoker_pipeline_up", "stoker_pipeline_up pipeline label_values "}, nil},
		{"no stoker metric", `up == 0`, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range parseRefs(t, tc.expr) {
				s := r.name
				for _, m := range r.matchers {
					s += " " + m.label + " " + m.op + " " + m.value
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("refs = %q, want %q", got, tc.want)
			}
			if g := groupingLabels(tc.expr); !slices.Equal(g, tc.groups) {
				t.Errorf("grouping labels = %q, want %q", g, tc.groups)
			}
		})
	}
}

func TestBalanced(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`sum(rate(x{a="("}[5m]))`, true},
		{`sum(rate(x[5m])`, false},
		{`sum(rate(x[5m)))`, false},
		{`x{a="b}`, false},
	} {
		if got := balanced(tc.expr); got != tc.want {
			t.Errorf("balanced(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
