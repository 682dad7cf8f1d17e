package experiment

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/turbulence-sre/turbulence/internal/config"
)

func TestTimeline(t *testing.T) {
	t.Parallel()
	d := func(s string) config.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return config.Duration(v)
	}
	for _, tc := range []struct {
		name  string
		steps []Step
		want  []Window
		end   time.Duration
	}{
		{"parallel from the start", []Step{
			{Name: "a", Target: "t", Duration: d("1m")},
			{Name: "b", Target: "u", Start: d("30s"), Duration: d("1m")},
		}, []Window{
			{Step: "a", Target: "t", Start: 0, End: time.Minute},
			{Step: "b", Target: "u", Start: 30 * time.Second, End: 90 * time.Second},
		}, 90 * time.Second},
		{"a sequence with a gap, listed out of order", []Step{
			{Name: "c", Target: "t", After: "b", Duration: d("10s")},
			{Name: "b", Target: "t", After: "a", Start: d("5s"), Duration: d("20s")},
			{Name: "a", Target: "t", Start: d("1s"), Duration: d("30s")},
		}, []Window{
			{Step: "c", Target: "t", Start: 56 * time.Second, End: 66 * time.Second},
			{Step: "b", Target: "t", Start: 36 * time.Second, End: 56 * time.Second},
			{Step: "a", Target: "t", Start: time.Second, End: 31 * time.Second},
		}, 66 * time.Second},
		{"a cycle counts from the start and ends", []Step{
			{Name: "a", Target: "t", After: "b", Duration: d("10s")},
			{Name: "b", Target: "t", After: "a", Duration: d("10s")},
		}, []Window{
			{Step: "a", Target: "t", Start: 10 * time.Second, End: 20 * time.Second},
			{Step: "b", Target: "t", Start: 0, End: 10 * time.Second},
		}, 20 * time.Second},
		{"no steps", nil, []Window{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &Spec{Steps: tc.steps}
			if diff := cmp.Diff(tc.want, s.Timeline()); diff != "" {
				t.Errorf("Timeline (-want +got):\n%s", diff)
			}
			if got := s.End(); got != tc.end {
				t.Errorf("End = %s, want %s", got, tc.end)
			}
		})
	}
}
