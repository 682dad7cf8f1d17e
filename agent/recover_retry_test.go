package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Invariant 3: an agent whose start-up recovery could not take back what
// an earlier run left still starts (the fleet sees it, its kill switch
// runs) but refuses new faults, saying why, until a retry finds nothing
// left; then it reports the old fault reverted and accepts new ones.
func TestAgent_IncompleteRecoveryRefusesFaultsUntilARetryCompletes(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers and their measurement need Linux /proc")
	}
	stateDir := t.TempDir()
	// An earlier run's disk fault whose recorded directory is not the
	// agent's to remove: a plain file stands where it should be.
	blocker := filepath.Join(t.TempDir(), sweep.FillDirPrefix+"old")
	if err := os.WriteFile(blocker, []byte("not a fault directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, _, err := journal.OpenFile(filepath.Join(stateDir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, r := range []journal.Record{
		{Op: journal.OpIntent, FaultID: "f-old", Kind: faultspec.KindDiskFill, At: now, Deadline: now.Add(time.Hour)},
		{Op: journal.OpApplied, FaultID: "f-old", Kind: faultspec.KindDiskFill, At: now, Undo: json.RawMessage(`{"marked_dirs":["` + blocker + `"]}`)},
	} {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := fakecontroller.Start(t, pki, fakecontroller.Options{})
	ta := startAgentIn(t, pki, ctrl, stateDir, func(c *Config) { c.RecoveryRetry = 20 * time.Millisecond })
	ctrl.WaitHello(waitLong)

	res := ta.apply(t, "c1", cpuFault("f-new", 5, time.Minute))
	if res.GetOk() {
		t.Fatal("a new fault was applied while an earlier run's fault was still on the host")
	}
	for _, want := range []string{"start-up recovery is incomplete", blocker} {
		if !strings.Contains(res.GetError(), want) {
			t.Errorf("refusal %q does not say %q", res.GetError(), want)
		}
	}

	// The host's operator sees it too.
	if st := ta.call(t, localapi.Request{Op: localapi.OpStatus}).Status; !strings.Contains(st.RecoveryIncomplete, blocker) {
		t.Errorf("local status recovery_incomplete = %q, want it to name %s", st.RecoveryIncomplete, blocker)
	}

	// The operator clears what blocked it; a retry completes recovery.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	ctrl.WaitFor(waitLong, "f-old reported reverted at start-up", func(m *turbulencev1.AgentMessage) bool {
		for _, st := range m.GetHeartbeat().GetFaults() {
			if st.GetFaultId() == "f-old" && st.GetReason() == ReasonRecovered {
				return true
			}
		}
		return false
	})
	if res := ta.apply(t, "c2", cpuFault("f-new", 5, time.Minute)); !res.GetOk() {
		t.Fatalf("apply after recovery completed = %v, want ok", res)
	}
	if st := ta.call(t, localapi.Request{Op: localapi.OpStatus}).Status; st.RecoveryIncomplete != "" {
		t.Errorf("local status after recovery completed: recovery_incomplete = %q", st.RecoveryIncomplete)
	}
}
