package state

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAudit_FiltersNewestFirst(t *testing.T) {
	t.Parallel()
	s := New()
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for i, actor := range []string{"admin/alice", "operator/bob", "admin/alice", "viewer/carol", "admin/alice"} {
		s.ApplyAudit(Meta{RequestID: "r", Actor: actor, Time: base.Add(time.Duration(i) * time.Minute)},
			AuditRecord{Action: "fault.apply", Summary: "x"}, nil)
	}
	seqs := func(f AuditFilter) []uint64 {
		var out []uint64
		for _, e := range s.Audit(f) {
			out = append(out, e.GetSequence())
		}
		return out
	}
	tests := []struct {
		name string
		f    AuditFilter
		want []uint64
	}{
		{"all", AuditFilter{}, []uint64{5, 4, 3, 2, 1}},
		{"actor", AuditFilter{Actor: "admin/alice"}, []uint64{5, 3, 1}},
		{"limit", AuditFilter{Limit: 2}, []uint64{5, 4}},
		{"since", AuditFilter{Since: base.Add(3 * time.Minute)}, []uint64{5, 4}},
		{"until is exclusive", AuditFilter{Until: base.Add(time.Minute)}, []uint64{1}},
		{"window and actor", AuditFilter{Actor: "admin/alice", Since: base.Add(time.Minute), Until: base.Add(4 * time.Minute)}, []uint64{3}},
		{"nobody", AuditFilter{Actor: "admin/mallory"}, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, seqs(tt.f)); diff != "" {
			t.Errorf("%s: Audit(%+v) sequences (-want +got):\n%s", tt.name, tt.f, diff)
		}
	}
}

func TestAudit_RejectionRecordedWithReason(t *testing.T) {
	t.Parallel()
	s := New()
	e := s.ApplyAudit(Meta{Actor: "operator/bob"}, AuditRecord{Action: "fault.apply"}, errorf(ErrHalted, "fleet halted by admin/alice: slo"))
	if e.GetError() != "fleet halted by admin/alice: slo" {
		t.Errorf("audit error = %q", e.GetError())
	}
	if got := s.Audit(AuditFilter{}); len(got) != 1 {
		t.Errorf("audit = %v", got)
	}
}

// TestAudit_BoundedMemory proves the log keeps the latest MaxAuditEntries
// and keeps numbering, also across a snapshot round trip.
func TestAudit_BoundedMemory(t *testing.T) {
	t.Parallel()
	s := New()
	const extra = 7
	for range MaxAuditEntries + extra {
		s.ApplyAudit(Meta{Actor: "admin/a"}, AuditRecord{Action: "x"}, nil)
	}
	all := s.Audit(AuditFilter{})
	if len(all) != MaxAuditEntries {
		t.Fatalf("kept %d audit records, want %d", len(all), MaxAuditEntries)
	}
	if first, last := all[len(all)-1].GetSequence(), all[0].GetSequence(); first != extra+1 || last != MaxAuditEntries+extra {
		t.Errorf("kept sequences %d..%d, want %d..%d", first, last, extra+1, MaxAuditEntries+extra)
	}
	restored := New()
	if err := restored.Replace(s.Records()); err != nil {
		t.Fatal(err)
	}
	e := restored.ApplyAudit(Meta{Actor: "admin/a"}, AuditRecord{Action: "x"}, nil)
	if want := uint64(MaxAuditEntries + extra + 1); e.GetSequence() != want {
		t.Errorf("sequence after restore = %d, want %d", e.GetSequence(), want)
	}
	if n := len(restored.Audit(AuditFilter{})); n != MaxAuditEntries {
		t.Errorf("after restore and one more record: kept %d, want %d", n, MaxAuditEntries)
	}
}
