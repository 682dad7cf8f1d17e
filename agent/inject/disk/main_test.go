package disk

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent/worker"
)

// TestMain makes the test binary its own worker, as the agent binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Subcommand {
		os.Exit(worker.Main(os.Args[2:]))
	}
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0") // workers inherit it
	goleak.VerifyTestMain(m)
}
