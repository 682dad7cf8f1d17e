package report

import (
	"strings"
	"testing"
	"time"
)

// TestValidate_Fixtures: every fixture the tests and the runner use is a
// valid report.
func TestValidate_Fixtures(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]*Report{"example": Example(), "refused": refused(), "halted": halted(), "hour": large(600, 3)} {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", name, err)
		}
	}
}

// TestValidate_Errors breaks one rule at a time: each error names the
// field and says what was wanted, and an untouched report stays valid
// (the cases do not leak into each other).
func TestValidate_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Report)
		want   []string
	}{
		{"no version", func(r *Report) { r.Version = 0 }, []string{"version: 0, want at least 1"}},
		{"no id and name", func(r *Report) { r.ID, r.Name = "", "" }, []string{"id: empty", "name: empty"}},
		{"unknown state", func(r *Report) { r.State = "DONE" }, []string{`state: "DONE", want one of`}},
		{"unknown outcome", func(r *Report) { r.After.Outcome = "OK" }, []string{`after.outcome: "OK", want PASS, FAIL or NOT_RUN`}},
		{"refused that ran", func(r *Report) { r.State, r.Abort = StateRefused, nil },
			[]string{"during, after: a REFUSED experiment never ran them"}},
		{"running with an end", func(r *Report) { r.State, r.Abort = StateRunning, nil }, []string{"ended_at: set on a RUNNING experiment"}},
		{"ended without an end", func(r *Report) { r.EndedAt = time.Time{} }, []string{"ended_at: missing, and state ABORTED has ended"}},
		{"ended before it started", func(r *Report) { r.EndedAt = r.StartedAt.Add(-time.Second) }, []string{"ended_at: 2026-12-03 13:59:59.000 UTC is before started_at"}},
		{"aborted without abort", func(r *Report) { r.Abort = nil }, []string{"abort: missing on an ABORTED experiment"}},
		{"completed with abort", func(r *Report) { r.State = StateCompleted }, []string{"abort: set on a COMPLETED experiment"}},
		{"abort by an unknown probe", func(r *Report) { r.Abort.Probe = "p99" }, []string{`abort.probe: "p99" names no probe`}},
		{"abort without sample time", func(r *Report) { r.Abort.SampleAt = time.Time{} }, []string{"abort.sample_at: missing"}},
		{"abort without reason", func(r *Report) { r.Abort.Reason = "" }, []string{"abort.reason: empty"}},
		{"twice the same target", func(r *Report) { r.Targets = append(r.Targets, r.Targets[0]) }, []string{`targets[1].name: "web" used twice`}},
		{"step on no target", func(r *Report) { r.Steps[1].Target = "db" }, []string{`steps[1].target: "db" names no target`}},
		{"step ends before it starts", func(r *Report) { r.Steps[0].End = r.Steps[0].Start.Add(-time.Millisecond) }, []string{"steps[0].end: "}},
		{"step ended that never started", func(r *Report) { r.Steps[0].Start = time.Time{} }, []string{"steps[0].end: set on a step that never started"}},
		{"negative plan", func(r *Report) { r.Steps[0].PlannedDuration = -time.Second }, []string{"steps[0].planned_start, planned_duration: negative"}},
		{"member without state", func(r *Report) { r.Steps[1].Agents[1].State = "" }, []string{"steps[1].agents[1].state: empty"}},
		{"unknown probe kind", func(r *Report) { r.Probes[1].Kind = "graphite" }, []string{`probes[1].kind: "graphite", want one of`}},
		{"min above max", func(r *Report) { m := 1.0; r.Probes[1].Min = &m }, []string{"probes[1].min: 1 is above max 0.001"}},
		{"samples out of order", func(r *Report) { s := r.Probes[0].Samples; s[3], s[4] = s[4], s[3] }, []string{"probes[0].samples[4].at: before the sample ahead of it"}},
		{"host of no target", func(r *Report) { r.Hosts[1].Target = "db" }, []string{`hosts[1].target: "db" names no target`}},
		{"host not chosen", func(r *Report) { r.Hosts[1].Agent = "web-9" }, []string{`hosts[1].agent: "web-9" is not one of target web's chosen agents [web-1 web-2]`}},
		{"points out of order", func(r *Report) { p := r.Hosts[0].Metrics["load1"]; p[0], p[1] = p[1], p[0] }, []string{"hosts[0].metrics[load1][1].at: before the point ahead of it"}},
		{"events out of order", func(r *Report) { r.Events[0].At = r.EndedAt }, []string{"events[1].at: before the event ahead of it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Example()
			tc.mutate(r)
			err := r.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), `report "`) {
				t.Errorf("Validate() = %v, want it to name the report", err)
			}
		})
	}
}
