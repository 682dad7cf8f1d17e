package worker

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain makes the test binary its own worker: Command(os.Args[0], …)
// re-executes it with "worker cpu …", exactly as the agent does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Subcommand {
		os.Exit(Main(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == stuckWorkerArg {
		runStuckWorker(os.Args[2])
	}
	// A -race binary sleeps 1s at exit by default; workers are started and
	// stopped many times here, and they inherit this environment.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}
