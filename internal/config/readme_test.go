package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/internal/config"
)

// The README quotes the default configuration between markers; this keeps
// that copy true. To refresh it, replace the block with deploy/stoker.yaml.
func TestReadmeQuotesDefaultConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN deploy/stoker.yaml -->\n```yaml\n", "```\n<!-- END deploy/stoker.yaml -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no quoted configuration between %q and %q", begin, end)
	}
	if got, want := s[i+len(begin):j], string(config.DefaultYAML()); got != want {
		t.Fatalf("README.md's copy of deploy/stoker.yaml is stale; paste the file between the markers")
	}
}
