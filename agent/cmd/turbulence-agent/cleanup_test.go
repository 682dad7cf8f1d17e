package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/journal"
)

func TestCleanup_RevertsOpenFaultsOnceAndRefusesWhileLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, agent.JournalFile)
	j, _, err := journal.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(journal.Record{Op: journal.OpIntent, FaultID: "f-left", Kind: "cpu", At: time.Now(), Deadline: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// While the journal's owner lives, cleanup must not touch its faults.
	var out, errOut bytes.Buffer
	if code := runCleanup([]string{"--state-dir", dir}, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "in use") {
		t.Errorf("cleanup while locked: exit %d, stderr %q; want %d and 'in use'", code, errOut.String(), exitFailure)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	errOut.Reset()
	if code := runCleanup([]string{"--state-dir", dir}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "reverted fault f-left") {
		t.Errorf("cleanup: exit %d, stdout %q, stderr %q; want f-left reverted", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, agent.UnreportedFile)); err != nil {
		t.Errorf("cleanup kept no outcome for the agent's next start: %v", err)
	}
	out.Reset()
	// Other agents' marks on this host (tests running beside this one) may
	// be listed as left alone; nothing of this state directory's is left.
	if code := runCleanup([]string{"--state-dir", dir}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "nothing to clean up") || strings.Contains(out.String(), "reverted") {
		t.Errorf("second cleanup: exit %d, stdout %q; want nothing to clean up", code, out.String())
	}
	out.Reset()
	missing := filepath.Join(dir, "never-made")
	if code := runCleanup([]string{"--state-dir", missing}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "nothing to clean up: there is no state directory") {
		t.Errorf("cleanup of a missing state directory: exit %d, stdout %q; want 0 and nothing to clean up", code, out.String())
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("cleanup made the missing state directory: %v", err)
	}
	if code := runCleanup([]string{"--state-dir", dir, "extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("cleanup with an extra argument: exit %d, want %d", code, exitUsage)
	}
}
