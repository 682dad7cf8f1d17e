package probe

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// prometheusBin is where Debian's prometheus package puts the server
// (the Makefile's test target installs it).
const prometheusBin = "/usr/bin/prometheus"

// requirePrometheus skips t when the Prometheus server is not installed —
// unless TURBULENCE_REQUIRE_PRIVILEGED=1 (CI, which installs it), where
// that is a failure: these tests must never be skipped silently there.
func requirePrometheus(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err == nil {
		return
	}
	msg := prometheusBin + " is missing (Debian's prometheus package; make test installs it)"
	if os.Getenv(testutil.RequirePrivilegedEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", msg, testutil.RequirePrivilegedEnv)
	}
	t.Skip(msg + " (set " + testutil.RequirePrivilegedEnv + "=1 to make this a failure)")
}

// service is a real loopback HTTP service exposing metrics the test sets.
type service struct {
	reg  *prometheus.Registry
	srv  *httptest.Server
	addr string // host:port, for Prometheus's scrape config
}

// newService starts the service; t.Cleanup stops it.
func newService(t testing.TB) *service {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return &service{reg: reg, srv: srv, addr: strings.TrimPrefix(srv.URL, "http://")}
}

func (s *service) counter(t testing.TB, name string) prometheus.Counter {
	t.Helper()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "set by the test"})
	s.reg.MustRegister(c)
	return c
}

func (s *service) gauge(t testing.TB, name string) prometheus.Gauge {
	t.Helper()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "set by the test"})
	s.reg.MustRegister(g)
	return g
}

// promServer is a real Prometheus server started by the test, with its
// own configuration and storage in t.TempDir().
type promServer struct {
	URL  string
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
	done chan struct{} // closed when the process has exited
}

// startPrometheus starts Prometheus on a free loopback port, scraping
// target (host:port) as job "svc" every scrapeInterval, and waits until it
// is ready. t.Cleanup stops it. The port is chosen by listening on port 0
// and closing; another process may take it in between, so a start that
// fails with "address already in use" is retried on a new port.
func startPrometheus(t testing.TB, target string, scrapeInterval time.Duration) *promServer {
	t.Helper()
	requirePrometheus(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	conf := fmt.Sprintf(`global:
  scrape_interval: %[1]v
  evaluation_interval: %[1]v
scrape_configs:
  - job_name: svc
    scrape_interval: %[1]v
    scrape_timeout: %[1]v
    static_configs:
      - targets: [%[2]q]
`, scrapeInterval, target)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
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
func tryPrometheus(t testing.TB, cfg, data string) (*promServer, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, err
	}
	p := &promServer{URL: "http://" + addr, log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(prometheusBin,
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
	t.Cleanup(func() { p.stop(t) })

	hc := &http.Client{Timeout: time.Second}
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
				hc.CloseIdleConnections()
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

// stop ends the server (SIGTERM, then SIGKILL after a grace period) and
// waits for it. It may be called more than once.
func (p *promServer) stop(t testing.TB) {
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
