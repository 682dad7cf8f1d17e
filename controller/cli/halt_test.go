package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestAlreadyHalted: the answer to a halt tells a halt already in force
// by its author, its reason or its age, with no extra call.
func TestAlreadyHalted(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{tls: pki.Admin} // admin/dev-admin
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	halt := func(by, reason string, since time.Time) *turbulencev1.HaltStatus {
		return &turbulencev1.HaltStatus{Halted: true, By: by, Reason: reason, Since: timestamppb.New(since)}
	}
	tests := []struct {
		name string
		hs   *turbulencev1.HaltStatus
		want bool
	}{
		{"this call's own halt", halt("admin/dev-admin", "slo", start), false},
		{"someone else's", halt("operator/alice", "slo", start), true},
		{"another reason", halt("admin/dev-admin", "earlier", start), true},
		{"an hour old", halt("admin/dev-admin", "slo", start.Add(-time.Hour)), true},
		{"not halted", &turbulencev1.HaltStatus{}, false},
	}
	for _, tt := range tests {
		if got := a.alreadyHalted(tt.hs, "slo", start); got != tt.want {
			t.Errorf("%s: alreadyHalted = %v, want %v", tt.name, got, tt.want)
		}
	}
}
