package linearize

import (
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestExperimentFault: a fault an experiment's runner made (its identity
// has the role "experiment") is hidden from the model's lists; one a
// client made is not.
func TestExperimentFault(t *testing.T) {
	for by, want := range map[string]bool{
		"experiment/x-1a2b": true,
		"admin/lin-1":       false,
		"":                  false,
		"experimenter/x":    false,
	} {
		if got := ExperimentFault(&turbulencev1.Fault{CreatedBy: by}); got != want {
			t.Errorf("ExperimentFault(created by %q) = %v, want %v", by, got, want)
		}
	}
}
