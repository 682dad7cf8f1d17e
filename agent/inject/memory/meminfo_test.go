package memory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// fixtureProc writes a meminfo with total and available kB under a new
// proc root and returns it.
func fixtureProc(t *testing.T, meminfo string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "meminfo"), []byte(meminfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

const meminfo8G1G = "MemTotal:        8388608 kB\nMemFree:          524288 kB\nMemAvailable:    1048576 kB\nBuffers:            1024 kB\n"

func memFault(id string, spec *turbulencev1.MemorySpec) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Minute),
		Kind:     &turbulencev1.FaultSpec_Memory{Memory: spec},
	}}
}

func TestReadMeminfo(t *testing.T) {
	t.Parallel()
	mi, err := readMeminfo(fixtureProc(t, meminfo8G1G))
	if err != nil || mi.Total != 8<<30 || mi.Available != 1<<30 {
		t.Errorf("readMeminfo = %+v, %v, want total 8 GiB, available 1 GiB", mi, err)
	}
	for name, text := range map[string]string{
		"no MemAvailable": "MemTotal: 1024 kB\n",
		"no MemTotal":     "MemAvailable: 1024 kB\n",
		"bad number":      "MemTotal: x kB\nMemAvailable: 1 kB\n",
		"bad unit":        "MemTotal: 1 MB\nMemAvailable: 1 kB\n",
	} {
		if _, err := readMeminfo(fixtureProc(t, text)); err == nil {
			t.Errorf("%s: readMeminfo succeeded, want an error", name)
		}
	}
}

func TestInjector_RefusesAboveAvailableNamingFieldAndLimit(t *testing.T) {
	t.Parallel()
	// 8 GiB total, 1 GiB available, 128 MiB reserve: 896 MiB may be taken.
	// The binary does not exist: reaching worker.Start would fail with a
	// different error, so a pass proves nothing was started.
	in := New("/nonexistent/turbulence-agent", fixtureProc(t, meminfo8G1G))
	tests := []struct {
		name  string
		spec  *turbulencev1.MemorySpec
		field string
		asked string
	}{
		{"bytes", &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 1 << 30}}, "spec.memory.bytes", "1073741824 bytes (1.0 GiB)"},
		{"percent", &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 50}}, "spec.memory.percent_of_total", "50 % of MemTotal 8.0 GiB (4.0 GiB)"},
	}
	for _, tt := range tests {
		_, err := in.Apply(t.Context(), memFault("f-"+tt.name, tt.spec), time.Now().Add(time.Minute))
		if !errors.Is(err, ErrNotEnoughMemory) {
			t.Fatalf("%s: Apply = %v, want ErrNotEnoughMemory", tt.name, err)
		}
		for _, want := range []string{tt.field, tt.asked, "896.0 MiB available", "MemAvailable 1.0 GiB", "128.0 MiB reserve"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, want)
			}
		}
	}
}

func TestInjector_TargetResolvesPercentOfMemTotal(t *testing.T) {
	t.Parallel()
	in := New("/nonexistent", fixtureProc(t, "MemTotal: 8388608 kB\nMemAvailable: 8388608 kB\n"), WithReserve(0))
	got, err := in.Target(&turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 25}})
	// policy.MemoryTarget rounds MemTotal/100 down first: 23 bytes short
	// of 2 GiB, less than a page, and the same figure the policy checks.
	if want := uint64(8<<30) / 100 * 25; err != nil || got != want {
		t.Errorf("Target(25%% of 8 GiB) = %d, %v, want %d", got, err, want)
	}
	got, err = in.Target(&turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 8 << 30}})
	if err != nil || got != 8<<30 {
		t.Errorf("Target(all of it, no reserve) = %d, %v, want %d", got, err, uint64(8<<30))
	}
	// The reserve is what stands between the two.
	in = New("/nonexistent", fixtureProc(t, "MemTotal: 8388608 kB\nMemAvailable: 8388608 kB\n"), WithReserve(1))
	if _, err := in.Target(&turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 8 << 30}}); !errors.Is(err, ErrNotEnoughMemory) {
		t.Errorf("Target(all of it, 1 byte reserve) = %v, want ErrNotEnoughMemory", err)
	}
}

func TestInjector_RefusesWithoutMeminfo(t *testing.T) {
	t.Parallel()
	in := New("/nonexistent", t.TempDir())
	if _, err := in.Apply(t.Context(), memFault("f", &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 1 << 20}}), time.Now().Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "meminfo") {
		t.Errorf("Apply without meminfo = %v, want an error naming meminfo", err)
	}
}

func TestSettleTime_GrowsWithRampAndSize(t *testing.T) {
	t.Parallel()
	if got := settleTime(0, 0); got != settleGrace {
		t.Errorf("settleTime(0, 0) = %s, want the grace %s", got, settleGrace)
	}
	if got := settleTime(10*time.Second, 1<<30); got != 10*time.Second+settleGrace+2*time.Second {
		t.Errorf("settleTime(10s, 1 GiB) = %s, want ramp + grace + 2s of touching", got)
	}
}
