package disk

import (
	"errors"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/internal/config"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func fillBytes(n uint64) *turbulencev1.DiskFillSpec {
	return &turbulencev1.DiskFillSpec{Path: "/x", Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: n}}
}

func fillPercent(p uint32) *turbulencev1.DiskFillSpec {
	return &turbulencev1.DiskFillSpec{Path: "/x", Size: &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: p}}
}

func fillLeave(n uint64) *turbulencev1.DiskFillSpec {
	return &turbulencev1.DiskFillSpec{Path: "/x", Size: &turbulencev1.DiskFillSpec_LeaveFreeBytes{LeaveFreeBytes: n}}
}

func TestFloor_LargerOfBytesAndPercent(t *testing.T) {
	t.Parallel()
	d := policy.Disk{MinFreeBytes: config.ByteSize(1 << 30), MinFreePercent: 5}
	if got, rule := Floor(d, 10<<30); got != 1<<30 || !strings.Contains(rule, "disk.min_free_bytes") {
		t.Errorf("Floor(10GiB) = %d, %q; want 1GiB by disk.min_free_bytes", got, rule)
	}
	if got, rule := Floor(d, 100<<30); got != 5<<30 || !strings.Contains(rule, "disk.min_free_percent 5 %") {
		t.Errorf("Floor(100GiB) = %d, %q; want 5GiB by disk.min_free_percent", got, rule)
	}
	// No overflow near the top of uint64.
	if got := percentOf(1<<63, 50); got != 1<<62 {
		t.Errorf("percentOf(2^63, 50) = %d, want 2^62", got)
	}
}

func TestPlanFill(t *testing.T) {
	t.Parallel()
	const block = 4096
	sp := Space{Size: 100 << 20, Avail: 80 << 20, Block: block}                  // 20 % used
	d := policy.Disk{MinFreeBytes: config.ByteSize(5 << 20), MinFreePercent: 10} // floor 10MiB
	tests := []struct {
		name      string
		spec      *turbulencev1.DiskFillSpec
		want      uint64
		wantAvail uint64
		exact     bool
		note      string
		err       error
		errText   []string
	}{
		{name: "bytes rounded up to a block", spec: fillBytes(1<<20 + 1), want: 1<<20 + block},
		{name: "percent of filesystem", spec: fillPercent(90), want: 70 << 20, wantAvail: 10 << 20, exact: true},
		{name: "leave free", spec: fillLeave(30 << 20), want: 50 << 20, wantAvail: 30 << 20, exact: true},
		{name: "bytes over the floor", spec: fillBytes(75 << 20), err: ErrMinFree,
			errText: []string{"spec.disk_fill.bytes", "70.0MiB may be filled", "10.0MiB", "disk.min_free_percent 10 %", "cap"}},
		{name: "percent over the floor", spec: fillPercent(95), err: ErrMinFree,
			errText: []string{"spec.disk_fill.percent_of_filesystem", "95 % of 100.0MiB", "disk.min_free_percent"}},
		{name: "leave less than the floor", spec: fillLeave(1 << 20), err: ErrMinFree, errText: []string{"spec.disk_fill.leave_free_bytes"}},
		{name: "more bytes than available", spec: fillBytes(1 << 40), err: ErrMinFree, errText: []string{"1.0TiB"}},
		{name: "percent already reached", spec: fillPercent(15), err: ErrNothingToFill, errText: []string{"already 20.0 % used", "15 %"}},
		{name: "leave more than available", spec: fillLeave(90 << 20), err: ErrNothingToFill, errText: []string{"only 80.0MiB"}},
		{name: "no size", spec: &turbulencev1.DiskFillSpec{Path: "/x"}, errText: []string{"spec.disk_fill.size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := PlanFill(tt.spec, sp, d)
			if tt.err != nil || tt.errText != nil {
				if err == nil || tt.err != nil && !errors.Is(err, tt.err) {
					t.Fatalf("PlanFill = %+v, %v; want %v", p, err, tt.err)
				}
				for _, s := range tt.errText {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanFill: %v", err)
			}
			if p.Bytes != tt.want || p.WantAvail != tt.wantAvail || p.Exact != tt.exact || p.Note != "" {
				t.Errorf("PlanFill = %+v, want bytes %d, avail %d, exact %v, no note", p, tt.want, tt.wantAvail, tt.exact)
			}
			if p.Bytes%block != 0 {
				t.Errorf("fill of %d bytes is not whole blocks", p.Bytes)
			}
		})
	}
}

func TestPlanFill_CapFillsToTheFloorAndSaysSo(t *testing.T) {
	t.Parallel()
	sp := Space{Size: 100 << 20, Avail: 80 << 20, Block: 4096}
	d := policy.Disk{MinFreePercent: 10}
	spec := fillPercent(99)
	spec.Cap = true
	p, err := PlanFill(spec, sp, d)
	if err != nil {
		t.Fatal(err)
	}
	if p.Bytes != 70<<20 || p.WantAvail != 10<<20 || !p.Exact {
		t.Errorf("capped plan = %+v, want 70MiB leaving the 10MiB floor", p)
	}
	for _, s := range []string{"capped", "minimum free space", "disk.min_free_percent"} {
		if !strings.Contains(p.Note, s) {
			t.Errorf("note %q does not say %q", p.Note, s)
		}
	}
}

func TestPlanFill_AlreadyBelowTheFloorIsRefusedEvenWithCap(t *testing.T) {
	t.Parallel()
	spec := fillBytes(4096)
	spec.Cap = true
	_, err := PlanFill(spec, Space{Size: 100 << 20, Avail: 4 << 20, Block: 4096}, policy.Disk{MinFreeBytes: config.ByteSize(5 << 20)})
	if !errors.Is(err, ErrMinFree) || !strings.Contains(err.Error(), "already at or below the minimum free space of 5.0MiB (disk.min_free_bytes 5.0MiB)") {
		t.Errorf("err = %v, want ErrMinFree naming the floor and its rule", err)
	}
}
