package metrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a server goroutine behind: Serve's
// promise is that a cancelled ctx stops everything it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
