package network

import (
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// The network kinds' exactness, checked where it can be without a VM: the
// values a fault asks for are followed from the spec through the plan to
// the netlink attributes the kernel is given (toNetlink), compared with
// the kernel's own units computed here independently, and read back
// (fromNetlink) field by field. A halved delay, a loss off by a factor, a
// rate in bits instead of bytes fail here on any kernel; the privileged
// test below reads the same values back from this kernel where it has
// the qdisc, and the VM lab measures them on the wire.

// wireOps is the fake kernel with one more step on ReplaceQdisc: the
// qdisc goes through the netlink encoding and comes back through the
// read-back decoding, as it would through a real kernel's dump.
type wireOps struct {
	*fakeOps
	sent  map[string]netlink.Qdisc // by kind: what the kernel was given
	terms map[string]Qdisc         // by kind: what a read-back decodes
}

func (w *wireOps) ReplaceQdisc(q Qdisc) error {
	nq, err := toNetlink(q, 1)
	if err != nil {
		return err
	}
	w.sent[q.Kind] = nq
	w.terms[q.Kind] = fromNetlink(q.Link, nq)
	return w.fakeOps.ReplaceQdisc(q)
}

// kernelTicks and kernelProb are the kernel's units (netem times in
// scheduler ticks per /proc/net/psched, probabilities as a fraction of
// 2^32), written out here rather than taken from the code under test.
func kernelTicks(d time.Duration) uint32 {
	return uint32(float64(d.Microseconds()) * netlink.TickInUsec())
}

func kernelProb(pct float64) uint32 {
	if pct >= 100 {
		return math.MaxUint32
	}
	return uint32(pct / 100 * (1 << 32))
}

// near reports whether got is within tol of want.
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func netemSpecFault(n *turbulencev1.NetemSpec, b *turbulencev1.BandwidthSpec) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: "f-wire", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0", Netem: n, Bandwidth: b}}}}
}

var netemCases = []struct {
	name string
	n    *turbulencev1.NetemSpec
	b    *turbulencev1.BandwidthSpec
}{
	{"everything", &turbulencev1.NetemSpec{
		Delay: durationpb.New(50 * time.Millisecond), Jitter: durationpb.New(10 * time.Millisecond), DelayCorrelationPercent: 25,
		LossPercent: 30, LossCorrelationPercent: 10, DuplicatePercent: 10, CorruptPercent: 1.5,
		ReorderPercent: 5, ReorderGap: 3, RateBytesPerSecond: 1_250_000,
	}, &turbulencev1.BandwidthSpec{RateBytesPerSecond: 125_000}},
	{"delay only", &turbulencev1.NetemSpec{Delay: durationpb.New(1234 * time.Microsecond)}, nil},
	{"long delay", &turbulencev1.NetemSpec{Delay: durationpb.New(60 * time.Second), Jitter: durationpb.New(time.Second)}, nil},
	{"total loss", &turbulencev1.NetemSpec{LossPercent: 100}, nil},
	{"tiny probabilities", &turbulencev1.NetemSpec{LossPercent: 0.01, DuplicatePercent: 0.001, CorruptPercent: 0.1}, nil},
	{"rate over 32 bits", &turbulencev1.NetemSpec{RateBytesPerSecond: 10_000_000_000}, &turbulencev1.BandwidthSpec{RateBytesPerSecond: 5_000_000_000}},
}

// checkNetem compares a read-back netem with the spec, field by field.
func checkNetem(t *testing.T, got *Netem, n *turbulencev1.NetemSpec) {
	t.Helper()
	if got == nil {
		t.Fatal("no netem parameters read back")
	}
	// One scheduler tick is the encoding's resolution for times; 1e-6
	// percentage points is far below any setting and far above float32's
	// rounding of a percentage.
	tick := time.Duration(math.Ceil(1/netlink.TickInUsec())) * time.Microsecond
	for _, d := range []struct {
		field     string
		got, want time.Duration
	}{{"delay", got.Delay, n.GetDelay().AsDuration()}, {"jitter", got.Jitter, n.GetJitter().AsDuration()}} {
		if diff := d.got - d.want; diff > tick || diff < -tick {
			t.Errorf("%s read back %v, asked %v", d.field, d.got, d.want)
		}
	}
	wantDelayCorr := n.GetDelayCorrelationPercent()
	if n.GetDelay().AsDuration() == 0 || n.GetJitter().AsDuration() == 0 {
		wantDelayCorr = 0 // netem has no delay correlation without jitter
	}
	for _, p := range []struct {
		field     string
		got, want float64
	}{
		{"loss", got.Loss, n.GetLossPercent()},
		{"loss correlation", got.LossCorr, n.GetLossCorrelationPercent()},
		{"delay correlation", got.DelayCorr, wantDelayCorr},
		{"duplicate", got.Duplicate, n.GetDuplicatePercent()},
		{"corrupt", got.Corrupt, n.GetCorruptPercent()},
		{"reorder", got.Reorder, n.GetReorderPercent()},
	} {
		if !near(p.got, p.want, 1e-4*max(1, p.want)) {
			t.Errorf("%s read back %v %%, asked %v %%", p.field, p.got, p.want)
		}
	}
	if got.RateBytes != n.GetRateBytesPerSecond() {
		t.Errorf("rate read back %d B/s, asked %d B/s", got.RateBytes, n.GetRateBytesPerSecond())
	}
	if n.GetReorderPercent() > 0 && got.Gap != n.GetReorderGap() {
		t.Errorf("reorder gap read back %d, asked %d", got.Gap, n.GetReorderGap())
	}
}

// checkTbf compares a read-back tbf with the spec's rate, and its burst
// and queue with the plan's (tbfOf), to the kernel's resolution (one
// scheduler tick of the rate, for the burst).
func checkTbf(t *testing.T, got *Tbf, b *turbulencev1.BandwidthSpec) {
	t.Helper()
	if got == nil {
		t.Fatal("no tbf parameters read back")
	}
	want := tbfOf(b)
	if got.RateBytes != b.GetRateBytesPerSecond() {
		t.Errorf("tbf rate read back %d B/s, asked %d B/s", got.RateBytes, b.GetRateBytesPerSecond())
	}
	burstTol := float64(b.GetRateBytesPerSecond())/1e6/netlink.TickInUsec() + 1
	if !near(float64(got.Burst), float64(want.Burst), burstTol) {
		t.Errorf("tbf burst read back %d B, planned %d B (±%.0f)", got.Burst, want.Burst, burstTol)
	}
	if got.Limit != want.Limit {
		t.Errorf("tbf limit read back %d B, planned %d B", got.Limit, want.Limit)
	}
}

func TestNetemEncoding_SpecToKernelUnitsAndBack(t *testing.T) {
	t.Parallel()
	for _, tc := range netemCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := &wireOps{fakeOps: newFake("eth0"), sent: map[string]netlink.Qdisc{}, terms: map[string]Qdisc{}}
			in := newWithOps(Config{Exclusions: unitExclusions(t)}, w)
			h, err := in.Apply(t.Context(), netemSpecFault(tc.n, tc.b), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			defer func() { _ = h.Revert(t.Context()) }()

			// What the kernel is given, in its units.
			sent, ok := w.sent["netem"].(*netlink.Netem)
			if !ok {
				t.Fatalf("no netem qdisc sent; sent %v", w.sent)
			}
			if want := kernelTicks(tc.n.GetDelay().AsDuration()); sent.Latency != want {
				t.Errorf("netlink latency = %d ticks, want %d (%v)", sent.Latency, want, tc.n.GetDelay().AsDuration())
			}
			if want := kernelTicks(tc.n.GetJitter().AsDuration()); tc.n.GetDelay().AsDuration() > 0 && sent.Jitter != want {
				t.Errorf("netlink jitter = %d ticks, want %d (%v)", sent.Jitter, want, tc.n.GetJitter().AsDuration())
			}
			for _, p := range []struct {
				field string
				got   uint32
				pct   float64
			}{{"loss", sent.Loss, tc.n.GetLossPercent()}, {"duplicate", sent.Duplicate, tc.n.GetDuplicatePercent()}, {"corrupt", sent.CorruptProb, tc.n.GetCorruptPercent()}} {
				// float32 arithmetic in the encoding: within 2^-22 of the
				// exact fraction.
				if want := kernelProb(p.pct); !near(float64(p.got), float64(want), float64(want)/(1<<22)+1) {
					t.Errorf("netlink %s = %d, want %d (%v %%)", p.field, p.got, want, p.pct)
				}
			}
			if sent.Rate64 != tc.n.GetRateBytesPerSecond() {
				t.Errorf("netlink rate = %d, want %d B/s", sent.Rate64, tc.n.GetRateBytesPerSecond())
			}

			// What a read-back of it says, against the spec.
			checkNetem(t, w.terms["netem"].Netem, tc.n)
			if tc.b != nil {
				checkTbf(t, w.terms["tbf"].Tbf, tc.b)
			}
		})
	}
}

// TestPrivilegedNetwork_ReadBackMatchesAsked applies each case on a veth
// in a namespace of the test's own and reads the qdiscs back from this
// kernel through netlink. This kernel has tbf, so the bandwidth limit is
// always checked; netem only where the kernel has sch_netem (the VM lab
// otherwise).
func TestPrivilegedNetwork_ReadBackMatchesAsked(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Run("tbf", func(t *testing.T) {
		for _, rate := range []uint64{125_000, 1_250_000, 12_500_000, 5_000_000_000} {
			p := testutil.NewNSPair(t, 0)
			o := netlinkOps{h: p.HA}
			in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
			b := &turbulencev1.BandwidthSpec{RateBytesPerSecond: rate}
			h, err := in.Apply(t.Context(), bandwidthFault("f-tbf", p.LinkA, rate), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("Apply %d B/s: %v", rate, err)
			}
			checkTbf(t, readBack(t, o, p.LinkA, "tbf").Tbf, b)
			if err := h.Revert(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("netem", func(t *testing.T) {
		for _, tc := range netemCases {
			p := testutil.NewNSPair(t, 0)
			in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
			f := netemSpecFault(tc.n, tc.b)
			f.GetSpec().GetNetwork().Interface = p.LinkA
			h, err := in.Apply(t.Context(), f, time.Now().Add(time.Minute))
			if errors.Is(err, syscall.ENOENT) {
				testutil.SkipKernelFeature(t, "sch_netem", "this kernel cannot create a netem qdisc; the encoding is checked by TestNetemEncoding_SpecToKernelUnitsAndBack")
			}
			if err != nil {
				t.Fatalf("%s: Apply: %v", tc.name, err)
			}
			checkNetem(t, readBack(t, netlinkOps{h: p.HA}, p.LinkA, "netem").Netem, tc.n)
			if tc.b != nil {
				checkTbf(t, readBack(t, netlinkOps{h: p.HA}, p.LinkA, "tbf").Tbf, tc.b)
			}
			if err := h.Revert(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// readBack returns link's qdisc of the given kind as the kernel lists it.
func readBack(t *testing.T, o ops, link, kind string) Qdisc {
	t.Helper()
	qs, err := o.Qdiscs(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Kind == kind {
			return q
		}
	}
	t.Fatalf("no %s qdisc on %s: %v", kind, link, qs)
	return Qdisc{}
}
