package experiment

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readValid returns the text of testdata/valid.yaml, a valid experiment
// that the table tests break one rule at a time.
func readValid(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// problems returns the "field: reason" lines of an *Error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Error()
	}
	return out
}

func TestParse_ValidFileGetsDefaults(t *testing.T) {
	t.Parallel()
	s, err := Parse([]byte(readValid(t)))
	if err != nil {
		t.Fatalf("Parse(valid.yaml) = %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate(valid.yaml) = %v", err)
	}
	if got, want := s.Recovery.D(), DefaultRecovery; got != want {
		t.Errorf("Recovery = %s, want %s", got, want)
	}
	if got, want := s.Probes[0].Interval.D(), DefaultInterval; got != want {
		t.Errorf("Probes[0].Interval = %s, want %s", got, want)
	}
	if got, want := s.Probes[1].Interval.D(), 2*time.Second; got != want {
		t.Errorf("Probes[1].Interval = %s, want %s (written in the file)", got, want)
	}
	h := s.Probes[0].HTTP
	if h.ExpectStatus != DefaultExpectStatus || h.Timeout.D() != DefaultHTTPTimeout || h.MaxLatency.D() != 300*time.Millisecond {
		t.Errorf("HTTP probe = %+v, want expect_status 200, timeout 5s, max_latency 300ms", *h)
	}
	if s.Targets["web"].Percent != 10 || s.Seed != 42 {
		t.Errorf("targets.web = %+v, seed %d", s.Targets["web"], s.Seed)
	}
}

func TestParse_Problems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"unknown top-level field", func(s string) string { return s + "recoveryy: 1m\n" },
			[]string{"recoveryy: unknown field"}},
		{"unknown nested field with its path", func(s string) string {
			return strings.Replace(s, "    after: burn\n", "    after: burn\n    durration: 1m\n", 1)
		}, []string{"steps[1].durration: unknown field"}},
		{"field names are case-sensitive", func(s string) string { return strings.Replace(s, "owner:", "Owner:", 1) },
			[]string{"Owner: unknown field"}},
		{"unknown field in a probe kind", func(s string) string { return strings.Replace(s, "max_latency: 300ms", "max_latncy: 300ms", 1) },
			[]string{"probes[0].http.max_latncy: unknown field"}},
		{"several problems at once", func(s string) string {
			return strings.Replace(strings.Replace(s, "seed: 42", "seed: -1", 1), "start: 10s", "start: 10", 1)
		}, []string{
			"seed: must be a whole number from 0 to 18446744073709551615, got the number -1",
			`steps[0].start: must be a duration such as "30s" or "1m30s", got the number 10`,
		}},
		{"bad duration text", func(s string) string { return strings.Replace(s, "duration: 2m", "duration: 2 minutes", 1) },
			[]string{`steps[0].duration: time: unknown unit " minutes" in duration "2 minutes"`}},
		{"wrong shape", func(s string) string { return strings.Replace(s, "steady_state: [home]", "steady_state: home", 1) },
			[]string{"steady_state: must be a list, got a string"}},
		{"duplicate key", func(s string) string { return s + "owner: someone-else\n" },
			[]string{`file: is not YAML: yaml: unmarshal errors: line 28: key "owner" already set in map`}},
		{"count of 0 is a cap of 0", func(s string) string { return strings.Replace(s, "percent: 10", "count: 0", 1) },
			[]string{"targets.web.count: must be at least 1: a cap of 0 chooses no agent (omit count and percent to take every eligible agent, within the controller's caps)"}},
		{"percent of 0 is a cap of 0", func(s string) string { return strings.Replace(s, "percent: 10", "percent: 0.0", 1) },
			[]string{"targets.web.percent: must be above 0: a cap of 0 chooses no agent (omit count and percent to take every eligible agent, within the controller's caps)"}},
		{"empty file", func(string) string { return "" }, []string{"file: is empty"}},
		{"not a mapping", func(string) string { return "- a\n- b\n" }, []string{"file: must be a mapping, got a list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse([]byte(tc.edit(readValid(t))))
			if s != nil {
				t.Errorf("Parse returned a spec with its error")
			}
			if diff := cmp.Diff(tc.want, problems(t, err)); diff != "" {
				t.Errorf("Parse problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse_TooLarge(t *testing.T) {
	t.Parallel()
	_, err := Parse(make([]byte, MaxFileBytes+1))
	want := []string{"file: is 65537 bytes, above the limit of 65536 bytes"}
	if diff := cmp.Diff(want, problems(t, err)); diff != "" {
		t.Errorf("Parse(too large) (-want +got):\n%s", diff)
	}
}
