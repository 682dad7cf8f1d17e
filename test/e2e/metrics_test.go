package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/metrics"
)

// scrapeMetrics fetches http://addr/metrics and returns its samples by
// series ("name{labels}" → value as written). A fresh transport, closed
// afterwards, keeps goleak's view of the process clean.
func scrapeMetrics(t *testing.T, addr string) map[string]string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d, %v", addr, resp.StatusCode, err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

// collectEarlierDaemons runs the garbage collector so that the TLS
// reloaders of the agents and controllers of earlier tests in this
// process, held weakly by tlsutil's registry, are gone: they carry the
// same identities (one dev PKI layout) with certificates a few seconds
// older, and the expiry gauge reports the earliest per identity. A
// daemon process has one of each and no such ghosts.
func collectEarlierDaemons() { runtime.GC() }

// notAfter reads the expiry of the PEM certificate at path.
func notAfter(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.NotAfter.Unix()
}

// TestAgentMetrics_ExpiryAndFaults runs a real agent with a metrics
// address and checks, over HTTP, the certificate expiry gauge against the
// certificate file, and faults_active following a CPU fault from apply to
// revert. The no-port default is TestAgent_ListensOnNoTCPPort's.
func TestAgentMetrics_ExpiryAndFaults(t *testing.T) {
	f := startFleet(t, func(c *agent.Config) { c.MetricsAddr = "127.0.0.1:0" })
	addr := f.agent.MetricsAddr()
	if addr == "" {
		t.Fatal("agent connected but MetricsAddr is empty: the endpoint is started before the first dial")
	}

	// Labels are written sorted by name.
	expiry := fmt.Sprintf(`%s{name=%q,role="agent"}`, metrics.CertExpiryName, f.agent.ID())
	want := notAfter(t, f.srv.PKI.Agent.Cert)
	// Polled: a client of an earlier test under the same agent name (a
	// FakeAgent's connection) may outlive its test by a moment, closing
	// in the background, and until it is collected its older certificate
	// is the earliest of that identity.
	var got map[string]string
	controllertest.WaitFor(t, waitLong, fmt.Sprintf("%s to be the agent certificate's NotAfter %d", expiry, want), func() bool {
		collectEarlierDaemons()
		got = scrapeMetrics(t, addr)
		// Compared as numbers: the exposition writes the shortest float form.
		var v float64
		_, err := fmt.Sscan(got[expiry], &v)
		return err == nil && int64(v) == want
	})
	for series, want := range map[string]string{
		`turbulence_agent_faults_active{kind="cpu"}`:    "0",
		`turbulence_agent_faults_active{kind="memory"}`: "0",
		`turbulence_agent_locally_halted`:               "0",
		`turbulence_agent_fleet_halted`:                 "0",
	} {
		if got[series] != want {
			t.Errorf("before any fault: %s = %q, want %q", series, got[series], want)
		}
	}

	id, _ := f.applyCPU(t, "20", "10m")
	// applyCPU returns once the agent reports the worker: the scrape reads
	// the same Manager, so no wait is needed here.
	if v := scrapeMetrics(t, addr)[`turbulence_agent_faults_active{kind="cpu"}`]; v != "1" {
		t.Errorf("with fault %s active: faults_active{kind=cpu} = %q, want 1", id, v)
	}
	if code, _, stderr := f.turbctl(t, "fault", "revert", id); code != cli.ExitOK {
		t.Fatalf("turbctl fault revert: exit %d:\n%s", code, stderr)
	}
	controllertest.WaitFor(t, waitLong, "faults_active{kind=cpu} to fall to 0 after the revert", func() bool {
		return scrapeMetrics(t, addr)[`turbulence_agent_faults_active{kind="cpu"}`] == "0"
	})
}

// TestControllerMetrics serves a leader's registry and checks the gauges
// the controller's main exposes on --metrics-addr.
func TestControllerMetrics(t *testing.T) {
	f := startFleet(t)
	reg := metrics.NewRegistry()
	metrics.RegisterCertExpiry(reg)
	f.srv.Controller.RegisterMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := metrics.Serve(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("metrics server: %v", err)
		}
	}()
	collectEarlierDaemons()
	got := scrapeMetrics(t, s.Addr())
	if got["turbulence_controller_is_leader"] != "1" {
		t.Errorf("is_leader = %q on the only node, want 1", got["turbulence_controller_is_leader"])
	}
	if got["turbulence_controller_agents_connected"] != "1" {
		t.Errorf("agents_connected = %q with one agent connected, want 1", got["turbulence_controller_agents_connected"])
	}
	if v := got["turbulence_controller_raft_last_index"]; v == "" || v == "0" {
		t.Errorf("raft_last_index = %q, want > 0 after the agent registered", v)
	}
	// One sample per identity, whatever the number of reloaders (server,
	// raft, forwarder) that present the controller certificate.
	want := fmt.Sprint(float64(notAfter(t, f.srv.PKI.Controller.Cert)))
	n := 0
	for k, v := range got {
		if strings.HasPrefix(k, metrics.CertExpiryName+"{") && strings.HasSuffix(k, `,role="controller"}`) {
			n++
			if v != want {
				t.Errorf("%s = %s, want %s", k, v, want)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d certificate expiry samples for the controller role, want 1: %v", n, got)
	}
}

// TestAgentMetrics_BusyAddressStopsRun: an agent asked to serve metrics
// on a port it cannot bind does not run, and says which address failed,
// rather than running without the metrics its operator relies on.
func TestAgentMetrics_BusyAddressStopsRun(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	busy, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	a, err := agent.New(agent.Config{
		Controllers:  []string{srv.Addr},
		TLS:          srv.PKI.Agent,
		StateDir:     t.TempDir(),
		LocalSocket:  filepath.Join(t.TempDir(), "run", "agent.sock"),
		WorkerBinary: os.Args[0],
		MetricsAddr:  busy.Addr().String(),
	})
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	err = a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run with a busy metrics address = %v, want an error naming %s as in use", err, busy.Addr())
	}
}
