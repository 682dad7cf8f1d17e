package inject

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/journal"
)

// TestMain makes the test binary the guardian of the fake guarded kind:
// its recovery does nothing, so only the fault lock's outcome tells who
// took a fault back.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == guardian.Subcommand {
		os.Exit(guardian.Main(os.Args[2:], os.Stdin, os.Stderr, guardianJournal, func(string) guardian.Recoverer {
			return func(context.Context, journal.Open) error { return nil }
		}))
	}
	goleak.VerifyTestMain(m)
}

// guardianJournal is the journal's name in the guarded tests' state
// directories.
const guardianJournal = "journal"
