package faultspec

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// oracle is a second, deliberately plain reading of the hard bounds in
// limits.go and of the fields the agent relies on, written without
// looking at how Validate walks a spec. It may be stricter than Validate
// on nothing that matters: whatever it refuses, Validate must refuse too
// (invariant 6 — bad input never reaches the journal or the host).
func oracle(s *turbulencev1.FaultSpec) error {
	d := s.GetDuration()
	if d == nil || d.CheckValid() != nil || d.AsDuration() < MinDuration || d.AsDuration() > MaxDuration {
		return fmt.Errorf("duration %v outside [%s, %s]", d, MinDuration, MaxDuration)
	}
	pct := func(name string, v float64) error {
		if !(v >= 0 && v <= 100) { // NaN fails both
			return fmt.Errorf("%s %v outside [0, 100]", name, v)
		}
		return nil
	}
	path := func(p string) error {
		if p == "" || len(p) > MaxPathLen || p[0] != '/' || strings.ContainsRune(p, 0) || filepath.Clean(p) != p {
			return fmt.Errorf("path %q is not a clean absolute path", p)
		}
		return nil
	}
	target := func(t *turbulencev1.TrafficTarget) error {
		if len(t.GetCidrs()) > MaxCIDRs || len(t.GetPorts()) > MaxPorts {
			return errors.New("too many cidrs or ports")
		}
		for _, c := range t.GetCidrs() {
			if _, err := netip.ParsePrefix(c); err != nil {
				return err
			}
		}
		for _, p := range t.GetPorts() {
			if p < 1 || p > 65535 {
				return fmt.Errorf("port %d", p)
			}
		}
		if _, ok := turbulencev1.Protocol_name[int32(t.GetProtocol())]; !ok {
			return errors.New("unknown protocol")
		}
		return nil
	}
	switch k := s.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		c := k.Cpu
		load, util := c.GetLoadPercent(), c.GetHostUtilizationPercent()
		if (util == 0 && (load < 1 || load > 100)) || util > 100 || (util > 0 && load != 0) {
			return fmt.Errorf("cpu load %d / utilisation %d", load, util)
		}
		if c.GetCores() > MaxCores || len(c.GetPinCpus()) > MaxCores {
			return errors.New("too many cores")
		}
		for i, cpu := range c.GetPinCpus() {
			if cpu >= MaxCores || slices.Contains(c.GetPinCpus()[:i], cpu) {
				return fmt.Errorf("pinned cpu %d", cpu)
			}
		}
		if n := len(c.GetPinCpus()); n > 0 && c.GetCores() != 0 && int(c.GetCores()) != n {
			return errors.New("pin_cpus and cores disagree")
		}
	case *turbulencev1.FaultSpec_Memory:
		m := k.Memory
		switch {
		case m.GetSize() == nil:
			return errors.New("no memory size")
		case m.GetPercentOfTotal() > 100:
			return errors.New("memory percent over 100")
		case m.GetBytes() == 0 && m.GetPercentOfTotal() == 0:
			return errors.New("memory size 0")
		}
		if r := m.GetRamp(); r != nil && (r.CheckValid() != nil || r.AsDuration() < 0 || r.AsDuration() > MaxDuration) {
			return errors.New("bad ramp")
		}
	case *turbulencev1.FaultSpec_DiskFill:
		f := k.DiskFill
		if err := path(f.GetPath()); err != nil {
			return err
		}
		switch f.GetSize().(type) {
		case nil:
			return errors.New("no fill size")
		case *turbulencev1.DiskFillSpec_Bytes:
			if f.GetBytes() == 0 {
				return errors.New("fill of 0 bytes")
			}
		case *turbulencev1.DiskFillSpec_PercentOfFilesystem:
			if p := f.GetPercentOfFilesystem(); p < 1 || p > 100 {
				return errors.New("fill percent")
			}
		}
	case *turbulencev1.FaultSpec_DiskIo:
		io := k.DiskIo
		if err := path(io.GetPath()); err != nil {
			return err
		}
		if _, ok := turbulencev1.DiskIOMode_name[int32(io.GetMode())]; !ok || io.GetMode() == turbulencev1.DiskIOMode_DISK_IO_MODE_UNSPECIFIED {
			return errors.New("disk io mode")
		}
		if bs := io.GetBlockSizeBytes(); bs != 0 && (bs%512 != 0 || bs > MaxBlockSize) {
			return errors.New("block size")
		}
		if io.GetWorkers() > MaxIOWorkers {
			return errors.New("workers")
		}
	case *turbulencev1.FaultSpec_Network:
		n := k.Network
		if name := n.GetInterface(); name == "" || len(name) > MaxInterfaceLen || strings.ContainsAny(name, "/ \x00") {
			return fmt.Errorf("interface %q", name)
		}
		if _, ok := turbulencev1.Direction_name[int32(n.GetDirection())]; !ok {
			return errors.New("direction")
		}
		if n.GetNetem() == nil && n.GetBandwidth() == nil {
			return errors.New("neither netem nor bandwidth")
		}
		if e := n.GetNetem(); e != nil {
			for _, d := range []*durationpb.Duration{e.GetDelay(), e.GetJitter()} {
				if d != nil && (d.CheckValid() != nil || d.AsDuration() < 0 || d.AsDuration() > MaxNetemDelay) {
					return fmt.Errorf("netem delay or jitter %v", d)
				}
			}
			for name, v := range map[string]float64{
				"delay correlation": e.GetDelayCorrelationPercent(), "loss": e.GetLossPercent(),
				"loss correlation": e.GetLossCorrelationPercent(), "duplicate": e.GetDuplicatePercent(),
				"corrupt": e.GetCorruptPercent(), "reorder": e.GetReorderPercent(),
			} {
				if err := pct(name, v); err != nil {
					return err
				}
			}
			if e.GetReorderPercent() > 0 && e.GetDelay().AsDuration() <= 0 {
				return errors.New("reorder without delay")
			}
		}
		if b := n.GetBandwidth(); b != nil && b.GetRateBytesPerSecond() == 0 {
			return errors.New("bandwidth 0")
		}
		if err := target(n.GetTarget()); err != nil {
			return err
		}
	case *turbulencev1.FaultSpec_Partition:
		if _, ok := turbulencev1.Direction_name[int32(k.Partition.GetDirection())]; !ok {
			return errors.New("direction")
		}
		if err := target(k.Partition.GetTarget()); err != nil {
			return err
		}
	default:
		return errors.New("no kind")
	}
	return nil
}

// fuzzSeeds are valid specs of every kind and specs just past a limit,
// so that even the seed run (go test without -fuzz) puts the oracle and
// Validate side by side on both sides of each bound.
func fuzzSeeds() []*turbulencev1.FaultSpec {
	dur := durationpb.New(time.Minute)
	net := func(n *turbulencev1.NetemSpec) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Duration: dur, Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0", Netem: n}}}
	}
	fill := func(p string) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Duration: dur, Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{Path: p, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 1 << 20}}}}
	}
	return []*turbulencev1.FaultSpec{
		cpuSpec(1, 50, time.Second), cpuSpec(0, 150, 0), cpuSpec(1, 100, 24*time.Hour), cpuSpec(1, 50, 24*time.Hour+time.Nanosecond),
		cpuSpec(1, 50, time.Second-time.Nanosecond),
		{Duration: dur, Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 101}}}},
		{Duration: dur, Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 1 << 30}, Ramp: durationpb.New(-time.Second)}}},
		net(&turbulencev1.NetemSpec{Delay: durationpb.New(50 * time.Millisecond), Jitter: durationpb.New(5 * time.Millisecond), LossPercent: 30, DuplicatePercent: 10, CorruptPercent: 1}),
		net(&turbulencev1.NetemSpec{LossPercent: -0.5}),
		net(&turbulencev1.NetemSpec{DuplicatePercent: 100.5}),
		net(&turbulencev1.NetemSpec{CorruptPercent: math.NaN()}),
		net(&turbulencev1.NetemSpec{Delay: durationpb.New(MaxNetemDelay + time.Millisecond)}),
		net(&turbulencev1.NetemSpec{Jitter: durationpb.New(-time.Millisecond)}),
		net(&turbulencev1.NetemSpec{ReorderPercent: 5}),
		fill("/var/tmp/fill"), fill("var/tmp"), fill("/var/../etc"),
		{Duration: dur, Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/15"}, Ports: []uint32{65536}}}}},
	}
}

// FuzzValidate checks properties, not only the absence of panics:
//   - whatever Validate accepts, the oracle accepts (never more lenient
//     than a plain reading of the limits);
//   - a refusal is an *Error whose every problem names a spec field and
//     says why;
//   - Validate does not change the spec and gives the same answer twice;
//   - an accepted spec survives the wire: encoded and decoded again it is
//     equal and still accepted, and its Kind is one of AllKinds (what the
//     controller and the agent then act on).
func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec turbulencev1.FaultSpec
		if err := proto.Unmarshal(data, &spec); err != nil {
			return
		}
		before := proto.Clone(&spec)
		err := Validate(&spec)
		if !proto.Equal(before, &spec) {
			t.Fatalf("Validate changed the spec:\nbefore %v\nafter  %v", before, &spec)
		}
		if again := Validate(&spec); (again == nil) != (err == nil) || (err != nil && again.Error() != err.Error()) {
			t.Fatalf("Validate is not deterministic: %v, then %v", err, again)
		}
		if err != nil {
			var verr *Error
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("Validate returned %v, want *Error with problems", err)
			}
			for _, p := range verr.Problems {
				if !strings.HasPrefix(p.Field, "spec") || p.Reason == "" {
					t.Fatalf("problem %+v does not name a spec field and a reason", p)
				}
			}
			return
		}
		if oerr := oracle(&spec); oerr != nil {
			t.Fatalf("Validate accepted %v, which the oracle refuses: %v", &spec, oerr)
		}
		if !slices.Contains(AllKinds, Kind(&spec)) {
			t.Fatalf("Validate accepted a spec of kind %q", Kind(&spec))
		}
		wire, err := proto.Marshal(&spec)
		if err != nil {
			t.Fatalf("marshal an accepted spec: %v", err)
		}
		var back turbulencev1.FaultSpec
		if err := proto.Unmarshal(wire, &back); err != nil || !proto.Equal(&back, &spec) {
			t.Fatalf("accepted spec does not survive the wire: %v\n%v\n%v", err, &spec, &back)
		}
		if err := Validate(&back); err != nil {
			t.Fatalf("accepted spec refused after the wire: %v", err)
		}
	})
}
