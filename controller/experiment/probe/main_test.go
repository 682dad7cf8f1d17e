package probe

import (
	"testing"

	"go.uber.org/goleak"
)

// Probes start no goroutine of their own, and their HTTP clients keep no
// idle connection: nothing may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
