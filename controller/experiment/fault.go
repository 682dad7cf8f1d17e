package experiment

import (
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// FaultSpec returns the step's fault: Fault read as the protobuf JSON form
// of turbulence.v1.FaultSpec (an unknown field is an error), with the
// step's Duration as its duration, checked by internal/faultspec like
// every other fault. Its errors are internal/faultspec's *Error, with
// fields named "spec.…"; Validate names them after the step instead.
func (st *Step) FaultSpec() (*turbulencev1.FaultSpec, error) {
	if len(st.Fault) == 0 || string(st.Fault) == "null" {
		return nil, &faultspec.Error{Problems: []faultspec.FieldError{{Field: "spec", Reason: "is required: one fault kind, e.g. {\"cpu\": {\"cores\": 1, \"load_percent\": 50}}"}}}
	}
	spec := &turbulencev1.FaultSpec{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(st.Fault, spec); err != nil {
		return nil, &faultspec.Error{Problems: []faultspec.FieldError{{Field: "spec", Reason: "is not a fault spec: " + oneLine(err.Error())}}}
	}
	// The step owns the duration: a second one inside the fault would
	// have to agree with it, so it is refused rather than compared.
	if spec.GetDuration() != nil {
		return nil, &faultspec.Error{Problems: []faultspec.FieldError{{Field: "spec.duration", Reason: reasonOwnDuration}}}
	}
	spec.Duration = durationpb.New(st.Duration.D())
	if err := faultspec.Validate(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// reasonOwnDuration refuses a duration inside a step's fault.
const reasonOwnDuration = "must not be set: the step's duration is the fault's"

// stepFaultProblems reports a step's fault problems under the step's path:
// the fault's duration is the step's, the rest is under "fault".
func stepFaultProblems(c *collector, path string, st *Step) {
	_, err := st.FaultSpec()
	if err == nil {
		return
	}
	var fe *faultspec.Error
	if !errors.As(err, &fe) {
		c.addf(path+".fault", "%s", err)
		return
	}
	for _, p := range fe.Problems {
		switch {
		case p.Field == "spec.duration" && p.Reason != reasonOwnDuration:
			// The step's own duration check says it in the step's words.
		case p.Field == "spec":
			c.addf(path+".fault", "%s", p.Reason)
		default:
			c.addf(path+".fault"+p.Field[len("spec"):], "%s", p.Reason)
		}
	}
}
