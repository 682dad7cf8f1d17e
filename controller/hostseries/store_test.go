package hostseries

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

// hb is a heartbeat sample taken at t with cpu as its CPU figure.
func hb(t time.Time, cpu float64) *turbulencev1.HostMetrics {
	used := uint64(1 << 30)
	return &turbulencev1.HostMetrics{
		SampledAt:               timestamppb.New(t),
		CpuPercent:              f(cpu),
		MemoryUsedPercent:       f(42.5),
		MemoryUsedBytes:         &used,
		Load1:                   f(1.25),
		DiskUsedPercent:         f(12.3),
		DiskReadBytesPerSecond:  f(100),
		DiskWriteBytesPerSecond: f(23),
		NetworkRxBytesPerSecond: f(1000),
		NetworkTxBytesPerSecond: f(500),
	}
}

func TestStore_KeepsAndTrimsTheRing(t *testing.T) {
	t.Parallel()
	s := New(5*time.Second, time.Second) // 5 samples
	if s.Capacity() != 5 {
		t.Fatalf("Capacity = %d, want 5", s.Capacity())
	}
	for i := range 8 {
		at := t0.Add(time.Duration(i) * time.Second)
		s.Record("a1", hb(at, float64(i)), at, at)
	}
	got := s.Series("a1", time.Time{})
	if len(got) != 5 {
		t.Fatalf("Series = %d samples, want the last 5", len(got))
	}
	for i, smp := range got {
		want := float64(i + 3)
		if smp.CPUPercent != want || !smp.Time.Equal(t0.Add(time.Duration(i+3)*time.Second)) {
			t.Errorf("sample %d = cpu %v at %v, want cpu %v at +%ds (oldest first)", i, smp.CPUPercent, smp.Time, want, i+3)
		}
	}
	if since := s.Series("a1", t0.Add(6*time.Second)); len(since) != 2 || since[0].CPUPercent != 6 {
		t.Errorf("Series(since +6s) = %v, want samples 6 and 7", since)
	}
	if s.Series("a1", t0.Add(time.Hour)) != nil || s.Series("nobody", time.Time{}) != nil {
		t.Error("Series with nothing to return is not nil")
	}
}

func TestStore_LatestByProbeName(t *testing.T) {
	t.Parallel()
	s := New(0, 0)
	if _, _, ok := s.Latest("a1", CPUPercent); ok {
		t.Fatal("Latest of an agent never heard is ok")
	}
	m := hb(t0, 12.3)
	m.Load1 = nil // the agent could not read it
	s.Record("a1", m, t0, t0)
	for _, c := range []struct {
		metric string
		want   float64
	}{
		{CPUPercent, 12.3}, {MemoryUsedPercent, 42.5}, {DiskUsedPercent, 12.3},
		{DiskIOBytesPerSecond, 123}, {NetworkBytesPerSecond, 1500}, {MemoryUsedBytes, 1 << 30},
	} {
		v, at, ok := s.Latest("a1", c.metric)
		if !ok || v != c.want || !at.Equal(t0) {
			t.Errorf("Latest(%s) = %v, %v, %v; want %v at %v", c.metric, v, at, ok, c.want, t0)
		}
	}
	if _, _, ok := s.Latest("a1", Load1); ok {
		t.Error("Latest(load1) is ok though the agent sent none")
	}
	if _, _, ok := s.Latest("a1", "cpu"); ok {
		t.Error("Latest of an unknown metric name is ok")
	}
	for _, name := range ProbeMetrics {
		if metricIndex(name) < 0 {
			t.Errorf("probe metric %s is not kept", name)
		}
	}
}

// TestStore_StampsOnTheControllersClock: an agent whose clock is an
// hour off still lands at the time the controller received its sample,
// less the sample's age when sent.
func TestStore_StampsOnTheControllersClock(t *testing.T) {
	t.Parallel()
	s := New(0, 0)
	agentNow := t0.Add(time.Hour)
	s.Record("a1", hb(agentNow.Add(-300*time.Millisecond), 1), agentNow, t0)
	got := s.Series("a1", time.Time{})
	if len(got) != 1 || !got[0].Time.Equal(t0.Add(-300*time.Millisecond)) {
		t.Fatalf("Series = %v, want one sample at received - 300ms", got)
	}
}

// TestStore_RepeatedSampleRecordedOnce: heartbeats sent early (a fault
// ended) repeat the sampler's latest sample; it counts once.
func TestStore_RepeatedSampleRecordedOnce(t *testing.T) {
	t.Parallel()
	s := New(0, 0)
	m := hb(t0, 5)
	s.Record("a1", m, t0, t0)
	s.Record("a1", m, t0.Add(100*time.Millisecond), t0.Add(100*time.Millisecond))
	s.Record("a1", hb(t0.Add(-time.Second), 9), t0, t0) // older: out of order
	if got := s.Series("a1", time.Time{}); len(got) != 1 || got[0].CPUPercent != 5 {
		t.Fatalf("Series = %v, want the one sample", got)
	}
}

func TestStore_PrunesSilentAgentsAndResets(t *testing.T) {
	t.Parallel()
	s := New(time.Minute, time.Second)
	s.Record("gone", hb(t0, 1), t0, t0)
	s.Record("busy", hb(t0, 1), t0, t0)
	// A record within a quarter window of the last sweep sweeps nothing;
	// one more than a window after the last sample of "gone" forgets it.
	for _, d := range []time.Duration{10 * time.Second, 61 * time.Second} {
		at := t0.Add(d)
		s.Record("busy", hb(at, 1), at, at)
		if wantGone := d > time.Minute; (s.Series("gone", time.Time{}) == nil) != wantGone {
			t.Errorf("%v later: gone forgotten %v, want %v", d, s.Series("gone", time.Time{}) == nil, wantGone)
		}
	}
	if s.Series("busy", time.Time{}) == nil || s.Agents() != 1 {
		t.Errorf("busy kept %v, %d agents; want only busy", s.Series("busy", time.Time{}) != nil, s.Agents())
	}
	s.Reset()
	if s.Agents() != 0 {
		t.Error("Reset kept series")
	}
}

func TestStore_CapacityBounds(t *testing.T) {
	t.Parallel()
	if c := New(time.Hour*24, time.Millisecond).Capacity(); c != 3600 {
		t.Errorf("Capacity of a day at 1ms = %d, want the bound 3600", c)
	}
	if c := New(time.Second, time.Minute).Capacity(); c != 2 {
		t.Errorf("Capacity of a window shorter than the interval = %d, want 2", c)
	}
}

func TestSample_ProtoLeavesUnreadOut(t *testing.T) {
	t.Parallel()
	p := Sample{Time: t0, CPUPercent: 1, MemoryUsedPercent: math.NaN()}.Proto()
	if p.CpuPercent == nil || p.MemoryUsedPercent != nil {
		t.Errorf("Proto = %v, want cpu present and memory absent", p)
	}
}

func TestStore_ConcurrentUse(t *testing.T) {
	t.Parallel()
	s := New(10*time.Second, time.Second)
	var wg sync.WaitGroup
	for a := range 4 {
		id := fmt.Sprint("a", a)
		wg.Go(func() {
			for i := range 200 {
				at := t0.Add(time.Duration(i) * time.Second)
				s.Record(id, hb(at, float64(i)), at, at)
				s.Series(id, time.Time{})
				s.Latest(id, CPUPercent)
			}
		})
	}
	wg.Wait()
	for a := range 4 {
		if v, _, _ := s.Latest(fmt.Sprint("a", a), CPUPercent); v != 199 {
			t.Errorf("agent a%d latest cpu = %v, want 199", a, v)
		}
	}
}

// BenchmarkStore_Record is the controller's cost, and allocations, of
// recording one heartbeat's sample in a fleet of 10,000 agents whose
// rings are full (the steady state): the ring is reused, so 0 allocs/op.
func BenchmarkStore_Record(b *testing.B) {
	const agents = 10_000
	s := New(DefaultWindow, time.Second)
	ids := make([]string, agents)
	msgs := make([]*turbulencev1.HostMetrics, agents)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%05d", i)
		msgs[i] = hb(t0, 50)
	}
	at := t0
	// Fill every ring first.
	for range s.Capacity() {
		at = at.Add(time.Second)
		for i := range ids {
			msgs[i].SampledAt = timestamppb.New(at)
			s.Record(ids[i], msgs[i], at, at)
		}
	}
	ts := make([]*timestamppb.Timestamp, 0, 1024)
	for i := range 1024 {
		ts = append(ts, timestamppb.New(at.Add(time.Duration(i+1)*time.Second)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		i := n % agents
		round := n / agents
		m := msgs[i]
		m.SampledAt = ts[round%len(ts)]
		now := m.SampledAt.AsTime()
		s.Record(ids[i], m, now, now)
		n++
	}
	b.ReportMetric(float64(s.Capacity()*48), "ring-bytes/agent")
}

// BenchmarkStore_Series is one GetAgentMetrics read of a full window.
func BenchmarkStore_Series(b *testing.B) {
	s := New(DefaultWindow, time.Second)
	at := t0
	for range s.Capacity() {
		at = at.Add(time.Second)
		s.Record("a1", hb(at, 12.3), at, at)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(s.Series("a1", time.Time{})) != s.Capacity() {
			b.Fatal("short series")
		}
	}
}
