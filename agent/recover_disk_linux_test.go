package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func availBytes(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Frsize)
}

// Invariant 3: a fill file outlives a SIGKILLed agent (files have no
// parent-death signal), and the next start removes it by its marks even
// when the journal that named it is lost.
func TestPrivilegedAgent_SIGKILLMidFill_RestartSweepsFillFile(t *testing.T) {
	testutil.RequirePrivileged(t)
	mnt := t.TempDir()
	// 2 GiB: the default policy keeps 1 GiB free. tmpfs takes memory only
	// for what is filled.
	if err := unix.Mount("turbulence-test", mnt, "tmpfs", 0, "size=2g"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	before := availBytes(t, mnt)

	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := fakecontroller.Start(t, pki, fakecontroller.Options{})
	stateDir := t.TempDir()
	proc := startAgentProcess(t, pki, ctrl, stateDir)
	ctrl.WaitHello(waitLong)
	ta := &testAgent{ctrl: ctrl}
	f := &turbulencev1.Fault{Id: "f-fill-killed", State: turbulencev1.FaultState_FAULT_STATE_PENDING,
		Deadline: timestamppb.New(time.Now().Add(10 * time.Minute)),
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(10 * time.Minute), Kind: &turbulencev1.FaultSpec_DiskFill{
			DiskFill: &turbulencev1.DiskFillSpec{Path: mnt, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 64 << 20}}}}}
	res := ta.apply(t, "c1", f)
	if !res.GetOk() || res.GetStatus().GetDisk().GetFilledBytes() < 64<<20 {
		t.Fatalf("apply = %v, want 64MiB filled", res)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()

	if got := availBytes(t, mnt); before-got < 64<<20 {
		t.Fatalf("after SIGKILL %d bytes are taken, want the 64MiB fill still there", before-got)
	}
	jpath := filepath.Join(stateDir, JournalFile)
	j, open, err := journal.OpenFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || !strings.Contains(string(open[0].Undo), `"marked_dirs":["`+mnt+"/.turbulence-fill-") {
		t.Fatalf("journal after SIGKILL lists %+v, want the fill's marked directory", open)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Lose the journal: only the marks are left to find the fill by.
	if err := os.Remove(jpath); err != nil {
		t.Fatal(err)
	}
	startAgentIn(t, pki, ctrl, stateDir)
	testutil.WaitFor(t, waitLong, func() (bool, string) {
		got := availBytes(t, mnt)
		return got == before, fmt.Sprintf("available %d, %d before the fill", got, before)
	})
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("mount root holds %v after the restart's sweep", entries)
	}
}
