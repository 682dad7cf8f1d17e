package worker

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUArgs_RoundTrip(t *testing.T) {
	t.Parallel()
	want := Spec{FaultID: "f-1", Owner: "/var/lib/turbulence", Cores: 2, LoadPercent: 40, Deadline: time.Unix(0, time.Now().Add(time.Minute).UnixNano()), CPUs: []int{0, 2}, Nice: 3}
	got, err := ParseCPUArgs(want.Args()[1:])
	if err != nil {
		t.Fatalf("ParseCPUArgs(%q) = %v", want.Args(), err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseCPUArgs(Args()) mismatch (-want +got):\n%s", diff)
	}
}

func TestMain_RefusesBadArgv(t *testing.T) {
	t.Parallel()
	future := strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)
	tooFar := strconv.FormatInt(time.Now().Add(48*time.Hour).UnixNano(), 10)
	tests := []struct {
		name string
		args []string
		want string // substring of stderr
	}{
		{"no kind", nil, "usage"},
		{"unknown kind", []string{"bogus"}, "unknown kind"},
		{"missing deadline", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50"}, "--deadline is required"},
		{"zero deadline", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50", "--deadline", "0"}, "--deadline is required"},
		{"deadline too far", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50", "--deadline", tooFar}, "more than"},
		{"load 0", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "0", "--deadline", future}, "--load must be between 1 and 100"},
		{"relative owner", []string{"cpu", "--fault-id", "f", "--owner", "state", "--cores", "1", "--load", "5", "--deadline", future}, "--owner must be an absolute path"},
		{"load 101", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "101", "--deadline", future}, "--load must be between 1 and 100, got 101"},
		{"cores 0", []string{"cpu", "--fault-id", "f", "--cores", "0", "--load", "50", "--deadline", future}, "--cores must be"},
		{"no fault id", []string{"cpu", "--cores", "1", "--load", "50", "--deadline", future}, "--fault-id is required"},
		{"fault id with space", []string{"cpu", "--fault-id", "a b", "--cores", "1", "--load", "50", "--deadline", future}, "spaces"},
		{"cpus length", []string{"cpu", "--fault-id", "f", "--cores", "2", "--load", "50", "--deadline", future, "--cpus", "1"}, "lists 1 CPUs but --cores is 2"},
		{"cpus twice", []string{"cpu", "--fault-id", "f", "--cores", "2", "--load", "50", "--deadline", future, "--cpus", "1,1"}, "listed twice"},
		{"cpus garbage", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50", "--deadline", future, "--cpus", "x"}, "not a CPU number"},
		{"unknown flag", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50", "--deadline", future, "--shell", "sh"}, "not defined"},
		{"positional", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "50", "--deadline", future, "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			if got := run(tt.args, &stderr); got != ExitUsage {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, ExitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, stderr.String(), tt.want)
			}
		})
	}
}

func TestNextBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		load       float64
		wall, used time.Duration
		want       time.Duration
	}{
		{"on target", 0.5, time.Second, 500 * time.Millisecond, 50 * time.Millisecond},
		{"behind: pays the debt", 0.5, time.Second, 470 * time.Millisecond, 80 * time.Millisecond},
		{"ahead: burns less", 0.5, time.Second, 520 * time.Millisecond, 30 * time.Millisecond},
		{"long stall is clamped to one period", 0.5, 10 * time.Second, time.Second, dutyPeriod},
		{"far ahead burns nothing", 0.25, time.Second, time.Second, 0},
		{"full load", 1, time.Second, time.Second, dutyPeriod},
		{"zero load", 0, time.Second, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := nextBudget(tt.load, tt.wall, tt.used); got != tt.want {
				t.Errorf("nextBudget(%v, %v, %v) = %v, want %v", tt.load, tt.wall, tt.used, got, tt.want)
			}
		})
	}
}
