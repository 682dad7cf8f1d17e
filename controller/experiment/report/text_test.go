package report

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
	}
}

// refused is a report of an experiment that never started: no steps
// ran, one probe failed before, the other had no value at all.
func refused() *Report {
	t0 := ExampleStart
	maxV, minV := 300.0, 0.5
	return &Report{
		Version: FormatVersion, ID: "exp-00aa", Name: "db-failover", Owner: "team-db", Seed: 7,
		State:     StateRefused,
		Before:    Verdict{Outcome: Fail, Reason: "error budget 0.31 remaining, below the floor 0.5"},
		During:    Verdict{Outcome: NotRun},
		After:     Verdict{Outcome: NotRun},
		StartedAt: t0, EndedAt: t0.Add(1500 * time.Millisecond),
		Targets: []Target{{Name: "db", Selector: "role=db", Agents: []string{"db-1"}}},
		Steps:   []Step{{Name: "fill", Target: "db", Kind: "disk", Fault: "fill leaving 2GiB free", PlannedDuration: time.Minute}},
		Probes: []ProbeSeries{
			{Name: "budget", Kind: KindErrorBudget, Subject: "slo:error_budget_remaining:ratio", Min: &minV,
				Samples: []Sample{{At: t0.Add(time.Second), Value: 0.31, Err: "error budget 0.31 remaining, below min 0.5"}}},
			{Name: "api", Kind: KindHTTP, Unit: "ms", Max: &maxV,
				Samples: []Sample{{At: t0.Add(time.Second), Value: Float(math.NaN()), Detail: "error", Err: "dial tcp 198.18.0.20:443: connect: connection refused"}}},
		},
		Events: []Event{{At: t0, Text: "experiment started"}, {At: t0.Add(1500 * time.Millisecond), Text: "refused: error budget below its floor"}},
	}
}

// TestText_Golden renders the example (aborted) and a refused report
// and compares them with the files under testdata/.
func TestText_Golden(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]*Report{"aborted.txt": Example(), "refused.txt": refused()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := Text(&buf, r); err != nil {
				t.Fatal(err)
			}
			golden(t, name, buf.Bytes())
		})
	}
}

// TestText_VerdictFirst checks the order an SRE relies on: the outcome
// on the first line, the three verdicts right after it.
func TestText_VerdictFirst(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Text(&buf, Example()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if !strings.Contains(lines[0], "ABORTED") {
		t.Errorf("first line %q does not give the state", lines[0])
	}
	var phases []string
	for _, l := range lines[1:6] {
		if f := strings.Fields(l); len(f) > 1 && (f[0] == "before" || f[0] == "during" || f[0] == "after") {
			phases = append(phases, f[0]+" "+f[1])
		}
	}
	if want := []string{"before PASS", "during FAIL", "after PASS"}; !cmp.Equal(phases, want) {
		t.Errorf("verdicts in the first lines = %q, want %q", phases, want)
	}
}

// TestText_EscapesTerminalControls feeds escape sequences through every
// kind of string the report carries: none may reach the terminal raw.
func TestText_EscapesTerminalControls(t *testing.T) {
	t.Parallel()
	const evil = "x\x1b[2J\x1b]0;pwned\x07\r\u202e"
	r := Example()
	r.Name, r.ID, r.Owner, r.Hypothesis = evil, evil, evil, evil
	r.Before.Reason, r.Abort.Reason, r.Abort.Probe = evil, evil, evil
	r.Targets[0].Name, r.Targets[0].Selector, r.Targets[0].Agents = evil, evil, []string{evil}
	r.Steps[0].Name, r.Steps[0].Fault, r.Steps[0].Agents[0].State, r.Steps[0].Agents[0].Err = evil, evil, evil, evil
	r.Probes[0].Name, r.Probes[0].Unit, r.Probes[0].Samples[0].Err = evil, evil, evil
	r.Probes[0].Samples[0].Pass = false
	r.Hosts[0].Agent = evil
	r.Hosts[0].Metrics[evil] = r.Hosts[0].Metrics["load1"]
	r.Events[0].Text = evil
	var buf bytes.Buffer
	if err := Text(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, c := range []string{"\x1b", "\x07", "\r", "\u202e"} {
		if strings.Contains(out, c) {
			t.Errorf("Text output contains %q raw:\n%s", c, out)
		}
	}
	if !strings.Contains(out, `x\x1b[2J`) {
		t.Errorf("Text output does not show the escaped name x\\x1b[2J:\n%s", out)
	}
}
