package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
	"github.com/turbulence-sre/turbulence/agent/leasefile"
	"github.com/turbulence-sre/turbulence/internal/stats"
)

// leaseJobs are one small job of every worker kind, owned by the agent
// whose state directory is owner and running for a minute.
func leaseJobs(t *testing.T, owner string) map[string]Job {
	deadline := time.Now().Add(time.Minute)
	scratch := filepath.Join(t.TempDir(), diskIODirPrefix+"f-lease-io")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	return map[string]Job{
		"cpu":    Spec{FaultID: "f-lease-cpu", Owner: owner, Cores: 1, LoadPercent: 5, Deadline: deadline},
		"memory": MemorySpec{FaultID: "f-lease-mem", Owner: owner, Bytes: 16 << 20, Deadline: deadline},
		"disk-io": DiskIOSpec{FaultID: "f-lease-io", Owner: owner, File: filepath.Join(scratch, DiskIOScratchName),
			FileBytes: 1 << 20, Mode: DiskIOMixed, IOPS: 50, BlockSize: 4096, Workers: 1, Deadline: deadline},
	}
}

// startCapturing starts job as the agent does (Command: the fixed argv)
// but with its stderr in a file, and returns the exit status and the
// stderr once it exits.
func startCapturing(t *testing.T, job Job) (cmd *exec.Cmd, done <-chan error, stderr func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	cmd = Command(selfBinary(t), job)
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	ch := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		ch <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return cmd, ch, func() string {
		raw, _ := os.ReadFile(f.Name())
		return string(raw)
	}
}

// TestWorker_EndsWhenItsOwnersLeaseRanOut: every kind of worker whose
// owner's lease file says the lease ran out ends itself, long before its
// deadline, with ExitLeaseExpired and a line saying why — what a frozen
// agent's workers do (invariant 2) — but not before the lease's end plus
// the guardians' grace.
func TestWorker_EndsWhenItsOwnersLeaseRanOut(t *testing.T) {
	owner := t.TempDir()
	expiry := time.Now().Add(300 * time.Millisecond)
	if err := leasefile.Write(owner, expiry); err != nil {
		t.Fatal(err)
	}
	for kind, job := range leaseJobs(t, owner) {
		t.Run(kind, func(t *testing.T) {
			_, done, stderr := startCapturing(t, job)
			select {
			case err := <-done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != ExitLeaseExpired {
					t.Fatalf("worker ended with %v, want exit status %d; stderr:\n%s", err, ExitLeaseExpired, stderr())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("worker still running 20 s after its owner's lease ran out (deadline in a minute); stderr:\n%s", stderr())
			}
			if early := time.Until(expiry.Add(leasefile.Grace)); early > 0 {
				t.Errorf("worker ended %s before its owner's lease end plus grace", early)
			}
			if out := stderr(); !strings.Contains(out, ErrLeaseExpired.Error()) || !strings.Contains(out, owner) {
				t.Errorf("stderr = %q, want the reason %q and the owner %s", out, ErrLeaseExpired, owner)
			}
		})
	}
}

// TestProcess_ErrSaysTheLeaseExpired: the agent's side of the exit status
// (the fault's end reason, agent/inject Manager.watch) names the lease.
func TestProcess_ErrSaysTheLeaseExpired(t *testing.T) {
	owner := t.TempDir()
	if err := leasefile.Write(owner, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	p, err := Start(selfBinary(t), Spec{FaultID: "f-lease-err", Owner: owner, Cores: 1, LoadPercent: 5, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(t.Context()) })
	waitDone(t, p, 20*time.Second)
	var exit *exec.ExitError
	err = p.Err()
	if !errors.Is(err, ErrLeaseExpired) || !errors.As(err, &exit) || exit.ExitCode() != ExitLeaseExpired {
		t.Errorf("Err() = %v, want ErrLeaseExpired wrapping the *exec.ExitError of status %d", err, ExitLeaseExpired)
	}
	var own interface{ EndReason() string }
	if !errors.As(err, &own) || own.EndReason() != ErrLeaseExpired.Error() {
		t.Errorf("Err() = %v, want an EndReason of %q for the fault's end", err, ErrLeaseExpired)
	}
}

// TestWorker_LeaseKeepsItRunning: a worker whose owner renews its lease, or
// whose owner's lease file is missing or unreadable (the guardians' rule:
// that is not a lapsed lease), keeps running well past the end of any one
// lease; once the renewals stop it ends, which shows it was checking all
// along. "renewed, wall clock an hour ahead" is a lease renewed on the
// boot clock while the wall clock reads it an hour past, as after a step
// of the wall clock: judged on the boot clock, it keeps the worker
// running (docs/design.md, "Clocks").
func TestWorker_LeaseKeepsItRunning(t *testing.T) {
	const ttl = time.Second // well above the test's renewal period, for a loaded host
	for _, start := range []string{"renewed", "missing", "unreadable", "renewed, wall clock an hour ahead"} {
		t.Run(start, func(t *testing.T) {
			owner := t.TempDir()
			renew := func() {
				t.Helper()
				switch start {
				case "renewed":
					if err := leasefile.Write(owner, time.Now().Add(ttl)); err != nil {
						t.Fatal(err)
					}
				case "unreadable":
					if err := os.WriteFile(filepath.Join(owner, "lease"), []byte("not a time\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				case "renewed, wall clock an hour ahead":
					now, err := bootclock.Now()
					if err != nil {
						t.Fatal(err)
					}
					text := fmt.Sprintf("%d\nboottime %s %d\n", time.Now().Add(ttl-time.Hour).UnixNano(), now.Boot, now.Add(ttl).Nanos)
					if err := os.WriteFile(filepath.Join(owner, "lease"), []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			renew()
			_, done, stderr := startCapturing(t, Spec{FaultID: "f-lease-" + strings.NewReplacer(", ", "-", " ", "-").Replace(start), Owner: owner, Cores: 1, LoadPercent: 5, Deadline: time.Now().Add(time.Minute)})
			// Long enough for three whole leases and their grace to run
			// out, had they not been renewed, and for many checks.
			until := time.Now().Add(3 * (ttl + leasefile.Grace))
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for time.Now().Before(until) {
				select {
				case err := <-done:
					t.Fatalf("worker ended with %v while its lease was %s; stderr:\n%s", err, start, stderr())
				case <-tick.C:
					renew()
				}
			}
			if err := leasefile.Write(owner, time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != ExitLeaseExpired {
					t.Fatalf("worker ended with %v once its lease ran out, want exit status %d", err, ExitLeaseExpired)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("worker still running 20 s after its lease ran out; stderr:\n%s", stderr())
			}
		})
	}
}

// BenchmarkWorker_EndAfterLease measures how long past its owner's lease
// end plus grace a CPU worker ends itself: at most one check period
// (leaseCheckEvery) plus the exit, by design.
func BenchmarkWorker_EndAfterLease(b *testing.B) {
	bin := selfBinary(b)
	var late []time.Duration
	for b.Loop() {
		owner := b.TempDir()
		// A random phase between the lease's end and the worker's checks.
		expiry := time.Now().Add(200*time.Millisecond + rand.N(leaseCheckEvery))
		if err := leasefile.Write(owner, expiry); err != nil {
			b.Fatal(err)
		}
		p, err := Start(bin, Spec{FaultID: "f-lease-bench", Owner: owner, Cores: 1, LoadPercent: 50, Deadline: time.Now().Add(time.Minute)})
		if err != nil {
			b.Fatal(err)
		}
		<-p.Done()
		late = append(late, time.Since(expiry.Add(leasefile.Grace)))
		if !errors.Is(p.Err(), ErrLeaseExpired) {
			b.Fatalf("worker ended with %v, want its lease", p.Err())
		}
	}
	ms := stats.Millis(late)
	b.ReportMetric(stats.Median(ms), "ms_past_lease+grace_p50")
	b.ReportMetric(stats.Percentile(ms, 100), "ms_past_lease+grace_max")
}
