package report

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the render
// test waits for Chromium through os/exec, whose copying goroutines
// must all have ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
