package main

import "testing"

func TestContended(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cpus   int
		others float64
		want   bool
	}{
		{2, 0.1, false},
		{2, 0.3, true},
		{16, 1.0, false},
		{16, 4.0, true},
		{1, 0.2, false},
		{1, 0.5, true},
	}
	for _, tt := range tests {
		m := measurement{cpus: tt.cpus, othersCores: tt.others}
		if got := m.contended(); got != tt.want {
			t.Errorf("contended(%d CPUs, others %.2f) = %v, want %v", tt.cpus, tt.others, got, tt.want)
		}
	}
}

func TestHostDelta(t *testing.T) {
	t.Parallel()
	prev := hostSample{perCPU: []cpuTicks{{busy: 10, total: 100}, {busy: 20, total: 100}}}
	cur := hostSample{perCPU: []cpuTicks{{busy: 60, total: 200}, {busy: 45, total: 200}}}
	if busy, total := cur.delta(prev); busy != 75 || total != 200 {
		t.Errorf("delta = %d, %d; want 75, 200", busy, total)
	}
	if got := cur.busyPercent(prev); got != 37.5 {
		t.Errorf("busyPercent = %v, want 37.5", got)
	}
}
