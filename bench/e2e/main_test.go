package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a run leaves no goroutine behind: workers, the
// embedded server and the subscriptions all stop.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
