package e2e

import (
	"testing"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// startPrometheus starts a real Prometheus server with no scrape target
// (it is asked whether queries parse, and constant queries such as
// vector(0.05)) and returns its URL; internal/testutil skips or fails
// when the server is not installed, and stops it at the end of the test.
func startPrometheus(t *testing.T) string {
	t.Helper()
	return testutil.StartPrometheus(t, "global:\n  scrape_interval: 1m\n").URL
}
