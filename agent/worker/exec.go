package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const StopGrace = 2 * time.Second

// Command returns the command that runs job as a worker of binary (the
// agent's own executable). The argv is fixed — binary, "worker", then
// job.Args() — and no shell is involved (docs/users.md L9). The process gets
// its own process group and, on Linux, PR_SET_PDEATHSIG=SIGKILL.
//
// A nice level travels in the argv (--nice, Spec.Nice / MemorySpec.Nice)
// and the worker applies it to its own process group before it does any
// work: Linux nice values are per thread, and by the time the agent could
// call setpriority on the child pid the Go runtime of the child has
// already started threads that a PRIO_PROCESS call would miss.
func Command(binary string, job Job) *exec.Cmd {
	// exec.Command (not CommandContext): cancelling a request context must
	// never kill a worker by accident; only Stop and the deadline do.
	cmd := exec.Command(binary, append([]string{Subcommand}, job.Args()...)...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stdin = nil
	cmd.Stdout = nil
	// An *os.File is handed to the child as is: no copying goroutine that
	// could outlive the worker.
	cmd.Stderr = os.Stderr
	return cmd
}

// Process is a started worker. Its exit is always waited for by a
// goroutine started with it, so that a worker never stays a zombie.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result; read only after done is closed
}

// Start validates job and starts it as a worker of binary. Nothing is
// started when job is invalid (invariant 6).
func Start(binary string, job Job) (*Process, error) {
	if err := job.Validate(time.Now()); err != nil {
		return nil, fmt.Errorf("invalid worker spec: %w", err)
	}
	cmd := Command(binary, job)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", binary, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the worker's process ID, which is also its process group ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Args returns the worker's argv.
func (p *Process) Args() []string { return p.cmd.Args }

// Done is closed when the worker has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// ErrLeaseExpired is what Err wraps for a worker that ended itself because
// its owner's lease ran out (ExitLeaseExpired). Its text starts as the
// agent's own lease reason does, so the fault's end counts as a lease end
// (internal/metrics EndReason).
var ErrLeaseExpired = errors.New("lease expired (the worker ended itself: its agent did not renew or revert)")

// leaseExpiredError is Err's error for ExitLeaseExpired: ErrLeaseExpired
// and the *exec.ExitError both.
type leaseExpiredError struct{ exit error }

func (e leaseExpiredError) Error() string   { return ErrLeaseExpired.Error() + ": " + e.exit.Error() }
func (e leaseExpiredError) Unwrap() []error { return []error{ErrLeaseExpired, e.exit} }

// EndReason is the reason the fault ended with (agent/inject Manager.watch
// asks for it): the lease, not the worker's exit status.
func (e leaseExpiredError) EndReason() string { return ErrLeaseExpired.Error() }

// Err returns why the worker exited: nil for exit status 0 (its deadline or
// SIGTERM), an *exec.ExitError otherwise, wrapped in ErrLeaseExpired for
// ExitLeaseExpired. Valid only after Done is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.ExitCode() == ExitLeaseExpired {
		return leaseExpiredError{exit: p.err}
	}
	return p.err
}

// Stop ends the worker: SIGTERM to its process group, up to StopGrace (or
// until ctx is done) for it to exit, then SIGKILL. It always returns after
// the worker has been waited for, and may be called any number of times.
func (p *Process) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pid := p.Pid()
	// The negative pid addresses the whole group (Setpgid made the worker
	// its leader), so helpers a worker may start go with it.
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal worker %d: %w", pid, err)
	}
	grace := time.NewTimer(StopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill worker %d: %w", pid, err)
	}
	// SIGKILL cannot be caught; waiting here is what guarantees no zombie
	// and no worker outliving its revert.
	<-p.done
	return nil
}
