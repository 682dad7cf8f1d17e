package experiment

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestStep_FaultSpec(t *testing.T) {
	t.Parallel()
	st := Step{Duration: config.Duration(90 * time.Second), Fault: json.RawMessage(`{"network": {"interface": "eth0", "netem": {"delay": "0.100s", "loss_percent": 1.5}}}`)}
	got, err := st.FaultSpec()
	if err != nil {
		t.Fatalf("FaultSpec() = %v", err)
	}
	want := &turbulencev1.FaultSpec{
		Duration: durationpb.New(90 * time.Second),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: "eth0",
			Netem:     &turbulencev1.NetemSpec{Delay: durationpb.New(100 * time.Millisecond), LossPercent: 1.5},
		}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("FaultSpec() (-want +got):\n%s", diff)
	}
}

func TestStep_FaultSpecErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		step  Step
		field string
	}{
		{"step duration below the fault minimum", Step{Duration: config.Duration(time.Millisecond), Fault: json.RawMessage(`{"cpu": {"load_percent": 10}}`)}, "spec.duration"},
		{"bad value", Step{Duration: config.Duration(time.Minute), Fault: json.RawMessage(`{"memory": {"percent_of_total": 0}}`)}, "spec.memory"},
		{"not JSON of a FaultSpec", Step{Duration: config.Duration(time.Minute), Fault: json.RawMessage(`[1]`)}, "spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, err := tc.step.FaultSpec()
			var fe *faultspec.Error
			if spec != nil || !errors.As(err, &fe) {
				t.Fatalf("FaultSpec() = %v, %v; want a *faultspec.Error", spec, err)
			}
			if got := fe.Problems[0].Field; len(got) < len(tc.field) || got[:len(tc.field)] != tc.field {
				t.Errorf("FaultSpec() problem field = %q, want it under %q (%v)", got, tc.field, err)
			}
		})
	}
}
