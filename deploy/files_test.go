package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

// obj is one decoded YAML document or JSON value.
type obj = map[string]any

// yamlDocs decodes every document of a YAML file; empty documents are
// skipped.
func yamlDocs(t *testing.T, path string) []obj {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []obj
	for i := 0; ; i++ {
		var doc obj
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

// get walks keys (string for maps, int for lists) and returns the value,
// or nil when a step is missing.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func num(t *testing.T, v any, path ...any) int {
	t.Helper()
	switch n := get(v, path...).(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	t.Fatalf("%v: not a number: %#v", path, get(v, path...))
	return 0
}

// strMap converts a map of strings (labels, selectors).
func strMap(v any, path ...any) map[string]string {
	out := map[string]string{}
	m, _ := get(v, path...).(obj)
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// subset reports whether every pair of sel is in labels.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // an empty selector selects everything: never intended here
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestEveryFileParses decodes every YAML and JSON file under deploy/.
func TestEveryFileParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			n++
			t.Run(path, func(t *testing.T) {
				if docs := yamlDocs(t, path); len(docs) == 0 {
					t.Errorf("no YAML document")
				}
			})
		case ".json":
			n++
			t.Run(path, func(t *testing.T) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				if err := json.Unmarshal(data, &v); err != nil {
					t.Errorf("%v", err)
				}
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Errorf("found only %d YAML/JSON files under deploy/", n)
	}
}

// TestNATSImageIsTheTestedVersion keeps the NATS server the deployments
// run at the minor version every test runs in process (go.mod's
// nats-server), whose behaviour stoker relies on (README "Delivery").
func TestNATSImageIsTheTestedVersion(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	v := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\d+\.\d+)\.`).FindSubmatch(mod)
	if v == nil {
		t.Fatal("go.mod requires no github.com/nats-io/nats-server/v2")
	}
	tested := string(v[1])
	re := regexp.MustCompile(`image:\s*nats:(\d+\.\d+)`)
	for _, f := range []string{"compose.yaml", "k8s/nats/statefulset.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(data)
		if m == nil {
			t.Fatalf("%s: no nats image", f)
		}
		if string(m[1]) != tested {
			t.Errorf("%s runs nats %s, the tests run nats-server %s", f, m[1], tested)
		}
	}
}
