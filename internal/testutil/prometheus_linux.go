package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PrometheusBin is where Debian's prometheus package puts the server;
// `make test` installs the package.
const PrometheusBin = "/usr/bin/prometheus"

// RequirePrometheus skips t when the Prometheus server is not installed,
// unless TURBULENCE_REQUIRE_PRIVILEGED=1 (CI, which installs it), where
// that is a failure: these tests must never be skipped silently there.
func RequirePrometheus(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(PrometheusBin); err != nil {
		msg := PrometheusBin + " is missing (Debian's prometheus package)"
		if requireEnv() {
			t.Fatalf("%s, and %s=1 forbids skipping", msg, RequirePrivilegedEnv)
		}
		t.Skip(msg)
	}
}

// Prometheus is a real Prometheus server started by a test, with its own
// configuration and storage in t.TempDir().
type Prometheus struct {
	URL  string
	cmd  *exec.Cmd
	log  *SyncBuffer
	done chan struct{} // closed when the process has exited
}

// StartPrometheus starts Prometheus with configuration config (YAML) on a
// free loopback port and waits until it is ready; t.Cleanup stops it. The
// port is chosen by listening on port 0 and closing; another process may
// take it in between, so a start that fails with "address already in use"
// is retried on a new port.
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	RequirePrometheus(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	const tries = 5
	for try := 1; ; try++ {
		p, err := tryPrometheus(t, cfg, filepath.Join(dir, fmt.Sprintf("data%d", try)))
		if err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) || try == tries {
			t.Fatalf("starting prometheus (try %d): %v", try, err)
		}
		t.Logf("prometheus: %v; trying another port", err)
	}
}

var errPortTaken = errors.New("the port was taken")

// tryPrometheus starts one Prometheus process and waits for /-/ready.
func tryPrometheus(t testing.TB, cfg, data string) (*Prometheus, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, err
	}
	p := &Prometheus{URL: "http://" + addr, log: &SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(PrometheusBin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// The server must not outlive a test binary that dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Stop(t) })

	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second) // a shared, busy machine
	for {
		select {
		case <-p.done:
			if strings.Contains(p.log.String(), "address already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, addr)
			}
			return nil, fmt.Errorf("prometheus exited before it was ready: %s\n%s", p.cmd.ProcessState, p.log)
		default:
		}
		var last string
		resp, err := hc.Get(p.URL + "/-/ready")
		if err != nil {
			last = err.Error()
		} else {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
			last = resp.Status
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("prometheus not ready within 60s (last answer: %s)\n%s", last, p.log)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after a grace period) and
// waits for it. It may be called more than once.
func (p *Prometheus) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("prometheus ignored SIGTERM for 30s; killed\n%s", p.log)
	}
}
