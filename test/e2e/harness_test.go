package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestMain makes the test binary its own worker and guardian, as the
// agent binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Subcommand {
		os.Exit(worker.Main(os.Args[2:]))
	}
	if parent := os.Getenv(spinEnv); parent != "" {
		spin(parent) // a plain busy loop, the load of the saturated benchmarks
	}
	if len(os.Args) > 1 && os.Args[1] == guardian.Subcommand {
		os.Exit(guardian.Main(os.Args[2:], os.Stdin, os.Stderr, agent.JournalFile, func(stateDir string) guardian.Recoverer {
			return agent.RecoverGuarded(stateDir, os.Args[0])
		}))
	}
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0") // workers inherit it
	goleak.VerifyTestMain(m)
}

// fleet is a running controller, one agent connected to it, and the admin
// credentials turbctl uses.
type fleet struct {
	srv   *controllertest.Server
	agent *agent.Agent
	api   turbulencev1.ControlServiceClient
}

// startFleet starts a controller and an agent; configure, if given, may
// change the agent's configuration first.
func startFleet(tb testing.TB, configure ...func(*agent.Config)) *fleet {
	tb.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		tb.Skip("workers and their measurement need Linux /proc")
	}
	srv := controllertest.NewServer(tb, nil)
	a := runAgent(tb, []string{srv.Addr}, srv.PKI.Agent, configure...)
	f := &fleet{srv: srv, agent: a, api: srv.AdminClient(tb)}
	controllertest.WaitFor(tb, 15*time.Second, "the agent to connect", func() bool {
		ag, err := f.api.GetAgent(tb.Context(), &turbulencev1.GetAgentRequest{Id: a.ID()})
		return err == nil && ag.GetConnected()
	})
	return f
}

// runAgent starts a real agent of controllers with the certificate files
// tls and the e2e defaults (temporary state directory and socket, this
// test binary as its worker, quick reconnects); configure may change the
// configuration first. The agent stops, and must stop cleanly, when the
// test ends.
func runAgent(tb testing.TB, controllers []string, tls tlsutil.Files, configure ...func(*agent.Config)) *agent.Agent {
	tb.Helper()
	cfg := agent.Config{
		Controllers:  controllers,
		TLS:          tls,
		StateDir:     tb.TempDir(),
		LocalSocket:  filepath.Join(tb.TempDir(), "run", "agent.sock"),
		WorkerBinary: os.Args[0],
		Logger:       slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		BackoffMin:   10 * time.Millisecond,
		BackoffMax:   200 * time.Millisecond,
	}
	for _, c := range configure {
		c(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		tb.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("agent %s Run: %v", a.ID(), err)
		}
	})
	return a
}

// turbctl runs the CLI with the admin certificate and returns its exit
// code and output.
func (f *fleet) turbctl(tb testing.TB, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	admin := f.srv.PKI.Admin
	global := []string{"--controller", f.srv.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key}
	var out, errOut bytes.Buffer
	code = cli.Main(append(global, args...), &out, &errOut)
	return code, strings.TrimSpace(out.String()), errOut.String()
}

// held returns the agent's own status of fault id, or nil.
func (f *fleet) held(id string) *turbulencev1.FaultStatus {
	for _, st := range f.agent.Faults() {
		if st.GetFaultId() == id {
			return st
		}
	}
	return nil
}

// fault fetches fault id from the controller.
func (f *fleet) fault(tb testing.TB, id string) *turbulencev1.Fault {
	tb.Helper()
	flt, err := f.api.GetFault(tb.Context(), &turbulencev1.GetFaultRequest{Id: id})
	if err != nil {
		tb.Fatalf("GetFault %s: %v", id, err)
	}
	return flt
}

// alive reports whether a process with this pid exists (and is not yet
// reaped).
func alive(pid int32) bool { return pid > 0 && syscall.Kill(int(pid), 0) == nil }

// spinEnv makes this test binary a plain busy loop (TestMain): the load
// of the saturated benchmarks is not the project's code, and runs at the
// same scheduling priority as the agent. Its value is the parent's PID:
// the loop ends when its parent is gone, or after spinLimit at the
// latest, so that a test binary that dies cannot leave it burning a
// shared machine. (Not PDEATHSIG: it fires when the forking thread ends,
// and Go ends threads that a goroutine left locked.)
const (
	spinEnv   = "TURBULENCE_E2E_SPIN"
	spinLimit = 30 * time.Minute
)

// spin burns CPU until its parent is gone or spinLimit has passed.
func spin(parent string) {
	end := time.Now().Add(spinLimit)
	for x := uint64(1); ; x = x*6364136223846793005 + 1 {
		if x&(1<<22-1) == 0 && (strconv.Itoa(os.Getppid()) != parent || time.Now().After(end)) {
			os.Exit(0)
		}
	}
}
