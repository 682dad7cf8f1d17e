package e2e

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

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// prometheusBin is Debian's prometheus package's server.
const prometheusBin = "/usr/bin/prometheus"

// startPrometheus starts a real Prometheus server on a free loopback port,
// with no scrape target (it is asked only whether queries parse), and
// waits until it is ready; t.Cleanup stops it. It skips when the server
// is not installed, unless TURBULENCE_REQUIRE_PRIVILEGED=1 (CI), where
// that fails. A port taken between choosing and binding is retried.
func startPrometheus(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err != nil {
		msg := prometheusBin + " is missing (Debian's prometheus package)"
		if os.Getenv(testutil.RequirePrivilegedEnv) == "1" {
			t.Fatalf("%s, and %s=1 forbids skipping", msg, testutil.RequirePrivilegedEnv)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		url, err := tryPrometheus(t, cfg, filepath.Join(dir, fmt.Sprint("data", try)))
		if err == nil {
			return url
		}
		if !errors.Is(err, errPortTaken) || try == 5 {
			t.Fatalf("starting prometheus (try %d): %v", try, err)
		}
	}
}

var errPortTaken = errors.New("the port was taken")

func tryPrometheus(t *testing.T, cfg, data string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	log := &testutil.SyncBuffer{}
	cmd := exec.Command(prometheusBin, "--config.file="+cfg, "--storage.tsdb.path="+data,
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test binary
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	url := "http://" + addr
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second) // a shared, busy machine
	for {
		select {
		case <-done:
			if strings.Contains(log.String(), "address already in use") {
				return "", fmt.Errorf("%w: %s", errPortTaken, addr)
			}
			return "", fmt.Errorf("prometheus exited before it was ready: %s", log)
		default:
		}
		if resp, err := hc.Get(url + "/-/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("prometheus not ready within 60s: %s", log)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}
