package config_test

import (
	"fmt"

	"github.com/stoker-ml/stoker/internal/config"
)

func ExampleParse() {
	c, err := config.Parse([]byte(`
pipelines:
  - name: text
    batch: {max_items: 32, max_wait: 5ms}
`), "stoker.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := c.Pipeline("text")
	fmt.Println(len(c.Pipelines), p.Subjects, p.Output, p.Batch.MaxItems, p.Batch.MaxWait, p.MaxAckPending)

	_, err = config.Parse([]byte("pipelines:\n  - name: text\n    batch: {max_items: 0}\n"), "stoker.yaml")
	fmt.Println(err)
	// Output:
	// 1 [raw.text.>] tensors.text 32 5ms 128
	// stoker.yaml:3: pipelines[0].batch.max_items: must be > 0, got 0
}
