package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// rateLimited is the status controlapi.RateLimiter answers with (its
// shape is checked there; the CLI may not import the controller).
func rateLimited(t *testing.T) error {
	t.Helper()
	limit := "at most 20 mutating calls per second, bursts of 40, per identity on each controller node"
	st, err := status.New(codes.ResourceExhausted, "rate limit: admin/dev-admin may make "+limit+"; retry in 50ms (halt is never limited)").WithDetails(
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "admin/dev-admin", Description: limit}}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(50 * time.Millisecond)},
	)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestRateLimited_ExitCodeAndMessage(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.applyErrs = []error{
		rateLimited(t),
		// gRPC's own ResourceExhausted (message size) is not a rate limit.
		status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"),
	}
	apply := []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "50", "--duration", "1m"}

	r := runCLI(t, h.environ(), apply...)
	if r.code != ExitRateLimited {
		t.Errorf("exit code = %d, want %d (ExitRateLimited)", r.code, ExitRateLimited)
	}
	want := "turbctl: rate limited by controller " + h.addr + ": nothing was applied\n" +
		"turbctl:   admin/dev-admin: at most 20 mutating calls per second, bursts of 40, per identity on each controller node\n" +
		"turbctl: repeat the command after 50ms; turbctl halt is never rate limited\n"
	if r.stderr != want {
		t.Errorf("stderr =\n%s\nwant\n%s", r.stderr, want)
	}
	// Not retried by turbctl: the refusal is immediate and the script
	// decides (one ApplyFault per run).
	if n := len(h.fake.requests()); n != 1 {
		t.Errorf("ApplyFault calls = %d, want 1", n)
	}

	r = runCLI(t, h.environ(), apply...)
	r.check(t, ExitInvalid, "turbctl: over a size limit: grpc: received message larger than max")
}

func TestExitCodesHelp_ListsEveryCode(t *testing.T) {
	t.Parallel()
	for code := ExitOK; code <= ExitRateLimited; code++ {
		if !strings.Contains(exitCodesHelp, fmt.Sprintf("\n  %d  ", code)) {
			t.Errorf("exit code %d is missing from the help table:\n%s", code, exitCodesHelp)
		}
	}
}
