package worker

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseMemoryArgs_RoundTrip(t *testing.T) {
	t.Parallel()
	deadline := time.Unix(0, time.Now().Add(time.Minute).UnixNano())
	for _, want := range []MemorySpec{
		{FaultID: "f-mem", Bytes: 64 << 20, Deadline: deadline},
		{FaultID: "f-mem", Bytes: 12345, Deadline: deadline, Ramp: 1500 * time.Millisecond, Mlock: true, Nice: 10},
		{FaultID: "f-mem", Bytes: 1, Deadline: deadline, Nice: -5},
	} {
		args := want.Args()
		if args[0] != "memory" {
			t.Errorf("Args()[0] = %q, want the kind word %q", args[0], "memory")
		}
		got, err := ParseMemoryArgs(args[1:])
		if err != nil {
			t.Fatalf("ParseMemoryArgs(%q) = %v", args, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseMemoryArgs(Args()) mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestMemorySpec_ArgsAreFixed(t *testing.T) {
	t.Parallel()
	s := MemorySpec{FaultID: "f-1", Bytes: 1 << 20, Deadline: time.Unix(0, 1700000000000000000), Ramp: 2 * time.Second, Mlock: true, Nice: 5}
	want := []string{"memory", "--fault-id", "f-1", "--bytes", "1048576", "--deadline", "1700000000000000000", "--ramp", "2s", "--mlock", "--nice", "5"}
	if diff := cmp.Diff(want, s.Args()); diff != "" {
		t.Errorf("Args() mismatch (-want +got):\n%s", diff)
	}
}

func TestRampTarget(t *testing.T) {
	t.Parallel()
	const base, target = 10 << 20, 110 << 20
	tests := []struct {
		name          string
		ramp, elapsed time.Duration
		want          uint64
	}{
		{"no ramp: at once", 0, 0, target},
		{"start of ramp: start-up size", 10 * time.Second, 0, base},
		{"quarter", 10 * time.Second, 2500 * time.Millisecond, base + 25<<20},
		{"half", 10 * time.Second, 5 * time.Second, base + 50<<20},
		{"end", 10 * time.Second, 10 * time.Second, target},
		{"after", 10 * time.Second, time.Minute, target},
	}
	for _, tt := range tests {
		if got := rampTarget(base, target, tt.ramp, tt.elapsed); got != tt.want {
			t.Errorf("%s: rampTarget = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := rampTarget(20<<20, 8<<20, time.Second, 0); got != 8<<20 {
		t.Errorf("rampTarget with base above target = %d, want the target", got)
	}
}

func TestCorrection(t *testing.T) {
	t.Parallel()
	const page = 4096
	const mib = 1 << 20
	tests := []struct {
		name                     string
		rss, want, touched, size uint64
		wantD                    int64
	}{
		{"on target", 64 * mib, 64 * mib, 60 * mib, 64 * mib, 0},
		{"inside the 0.1% band", 64*mib - 60<<10, 64 * mib, 60 * mib, 64 * mib, 0},
		{"below: touch the difference in pages", 60 * mib, 64 * mib, 56 * mib, 64 * mib, 4 * mib},
		{"below, partial page rounds up", 60*mib + 1, 64 * mib, 56 * mib, 64 * mib, 4 * mib},
		{"below but the mapping is full", 60 * mib, 64 * mib, 63 * mib, 64 * mib, 1 * mib},
		{"above: release whole pages", 66 * mib, 64 * mib, 60 * mib, 64 * mib, -2 * mib},
		{"above by more than is touched", 66 * mib, 64 * mib, 1 * mib, 64 * mib, -1 * mib},
	}
	for _, tt := range tests {
		if got := correction(tt.rss, tt.want, tt.touched, tt.size, page); got != tt.wantD {
			t.Errorf("%s: correction = %d, want %d", tt.name, got, tt.wantD)
		}
	}
}

func TestMain_RefusesBadMemoryArgv(t *testing.T) {
	t.Parallel()
	future := strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)
	base := []string{"memory", "--fault-id", "f", "--deadline", future}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no bytes", base, "--bytes must be between 1 and"},
		{"zero bytes", append(base, "--bytes", "0"), "--bytes must be between 1 and"},
		{"bytes too large", append(base, "--bytes", "1125899906842625"), "got 1125899906842625"},
		{"negative ramp", append(base, "--bytes", "1", "--ramp", "-1s"), "--ramp must be between 0s and"},
		{"ramp not a duration", append(base, "--bytes", "1", "--ramp", "10"), "--ramp"},
		{"nice too low", append(base, "--bytes", "1", "--nice", "-21"), "--nice must be between -20 and 19, got -21"},
		{"nice too high", append(base, "--bytes", "1", "--nice", "20"), "--nice must be between -20 and 19, got 20"},
		{"missing deadline", []string{"memory", "--fault-id", "f", "--bytes", "1"}, "--deadline is required"},
		{"missing fault id", []string{"memory", "--bytes", "1", "--deadline", future}, "--fault-id is required"},
		{"positional", append(base, "--bytes", "1", "extra"), "unexpected arguments"},
		{"cpu nice too high", []string{"cpu", "--fault-id", "f", "--cores", "1", "--load", "5", "--deadline", future, "--nice", "99"}, "--nice must be between"},
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
