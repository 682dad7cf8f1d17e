package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/config"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func cpu(cores, load uint32, d time.Duration) *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{Duration: durationpb.New(d), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: cores, LoadPercent: load}}}
}

func mem(bytes uint64) *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: bytes}}}}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	host := Host{TotalMemoryBytes: 8 << 30, CPUs: 4}
	strict := Default()
	strict.AllowedKinds = []string{"cpu", "memory", "partition"}
	strict.MaxDuration = config.Duration(10 * time.Minute)
	strict.CPU.MaxLoadPercent = 80
	strict.CPU.MaxCores = 2
	strict.Network.ProtectedCIDRs = []string{"198.18.0.1/32"}
	tests := []struct {
		name     string
		spec     *turbulencev1.FaultSpec
		host     Host
		wantRule string
	}{
		{name: "allowed", spec: cpu(2, 80, time.Minute), host: host},
		{name: "kind not allowed", spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{}}}, host: host, wantRule: "allowed_kinds"},
		{name: "too long", spec: cpu(1, 50, time.Hour), host: host, wantRule: "max_duration"},
		{name: "load over limit", spec: cpu(1, 90, time.Minute), host: host, wantRule: "cpu.max_load_percent"},
		{name: "too many cores", spec: cpu(3, 50, time.Minute), host: host, wantRule: "cpu.max_cores"},
		{name: "all cores counts as host cores", spec: cpu(0, 50, time.Minute), host: host, wantRule: "cpu.max_cores"},
		{name: "more cores than host", spec: cpu(8, 50, time.Minute), host: Host{CPUs: 4, TotalMemoryBytes: 1}, wantRule: "cpu.cores"},
		{name: "concurrency", spec: cpu(1, 50, time.Minute), host: Host{CPUs: 4, ActiveFaults: 16}, wantRule: "max_concurrent_faults"},
		{name: "memory within limits", spec: mem(1 << 30), host: host},
		{name: "memory over percent", spec: mem(7 << 30), host: host, wantRule: "memory.max_percent_of_total"},
		{
			name: "protected cidr",
			spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/24"}}}}},
			host: host, wantRule: "network.protected_cidrs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := strict.Check(tt.spec, tt.host)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) || r.Rule != tt.wantRule {
				t.Fatalf("Check() = %v, want a refusal by rule %s", err, tt.wantRule)
			}
			if !strings.Contains(err.Error(), tt.wantRule) {
				t.Fatalf("error %q does not name the rule", err)
			}
		})
	}
}

func TestCheck_MemoryReserve(t *testing.T) {
	t.Parallel()
	p := Default()
	p.Memory.MaxPercentOfTotal = 100
	p.Memory.ReserveBytes = 1 << 30
	err := p.Check(mem(7<<30+1), Host{TotalMemoryBytes: 8 << 30, CPUs: 1})
	var r *Refusal
	if !errors.As(err, &r) || r.Rule != "memory.reserve_bytes" {
		t.Fatalf("Check() = %v, want memory.reserve_bytes refusal", err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := Load(filepath.Join(dir, "missing.yaml"), true)
	if err != nil || p.MaxDuration != Default().MaxDuration {
		t.Fatalf("Load(missing, ok) = %+v, %v; want defaults", p, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), false); err == nil {
		t.Fatal("Load(missing) succeeded")
	}
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", "allowed_kinds: [cpu]\nmax_duration: 15m\ncpu:\n  max_load_percent: 70\nmemory:\n  reserve_bytes: 2GiB\n")
	p, err = Load(good, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxDuration.D() != 15*time.Minute || p.CPU.MaxLoadPercent != 70 || p.Memory.ReserveBytes != 2<<30 || p.Memory.MaxPercentOfTotal != 80 {
		t.Fatalf("Load(good) = %+v", p)
	}
	for name, body := range map[string]string{
		"typo.yaml":     "max_duraton: 15m\n",
		"badkind.yaml":  "allowed_kinds: [cpu, fork_bomb]\n",
		"badload.yaml":  "cpu:\n  max_load_percent: 150\n",
		"badcidr.yaml":  "network:\n  protected_cidrs: [10.0.0.0/33]\n",
		"longdur.yaml":  "max_duration: 48h\n",
		"badnice.yaml":  "worker_nice: 40\n",
		"badbytes.yaml": "memory:\n  reserve_bytes: lots\n",
		"toomany.yaml":  "max_concurrent_faults: 33\n",
	} {
		if _, err := Load(write(name, body), false); err == nil {
			t.Errorf("Load(%s) accepted %q", name, body)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	r := NewRateLimiter(2)
	t0 := time.Unix(1000, 0)
	if r.Allow(t0) != nil || r.Allow(t0.Add(time.Second)) != nil {
		t.Fatal("first two events refused")
	}
	err := r.Allow(t0.Add(2 * time.Second))
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Rule != "max_new_faults_per_minute" {
		t.Fatalf("third event: %v, want refusal", err)
	}
	if err := r.Allow(t0.Add(61 * time.Second)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
