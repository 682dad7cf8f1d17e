package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLocalHaltFile_RoundTripAndFailSafe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, halted, err := loadLocalHalt(dir); halted || err != nil {
		t.Fatalf("load with no file = halted %v, %v; want not halted", halted, err)
	}
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := saveLocalHalt(dir, localHaltRecord{Reason: "r", Since: since}); err != nil {
		t.Fatal(err)
	}
	rec, halted, err := loadLocalHalt(dir)
	if !halted || err != nil || rec.Reason != "r" || !rec.Since.Equal(since) {
		t.Errorf("load = %+v, %v, %v; want r since %v", rec, halted, err, since)
	}
	if fi, err := os.Stat(filepath.Join(dir, LocalHaltFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record file mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// A torn or corrupt record keeps the agent halted: fail safe.
	if err := os.WriteFile(filepath.Join(dir, LocalHaltFile), []byte(`{"reas`), 0o600); err != nil {
		t.Fatal(err)
	}
	if rec, halted, err := loadLocalHalt(dir); !halted || err == nil || rec.Reason == "" {
		t.Errorf("load of a corrupt record = %+v, %v, %v; want halted with an error", rec, halted, err)
	}

	if err := removeLocalHalt(dir); err != nil {
		t.Fatal(err)
	}
	if _, halted, _ := loadLocalHalt(dir); halted {
		t.Errorf("halted after removeLocalHalt")
	}
	if err := removeLocalHalt(dir); err != nil {
		t.Errorf("second remove = %v, want nil (idempotent)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("state dir holds %v after remove, want nothing (no temp files left)", entries)
	}
}
