// Package texttest writes tokenizer.json files changed from the bundled
// one, for tests of what a tokenizer's settings change.
package texttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// WriteBERT writes the bundled bert-base-uncased tokenizer.json, changed
// by mutate (which edits the decoded JSON), into a temporary file and
// returns its path.
func WriteBERT(t testing.TB, mutate func(tok map[string]any)) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "tokenizers", "bert-base-uncased.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	mutate(tok)
	if b, err = json.Marshal(tok); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
