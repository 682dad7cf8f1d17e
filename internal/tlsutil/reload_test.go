package tlsutil

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// handshakePeers runs one handshake over a pipe and returns the leaf
// certificate each side saw from the other.
func handshakePeers(t *testing.T, server, client *tls.Config) (serverSaw, clientSaw string) {
	t.Helper()
	c1, c2 := net.Pipe()
	defer func() { _, _ = c1.Close(), c2.Close() }()
	type res struct {
		serial string
		err    error
	}
	done := make(chan res, 1)
	go func() {
		cc := tls.Client(c2, client)
		err := cc.Handshake()
		var serial string
		if err == nil {
			serial = cc.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		done <- res{serial, err}
	}()
	sc := tls.Server(c1, server)
	if err := sc.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("client handshake: %v", r.err)
	}
	return sc.ConnectionState().PeerCertificates[0].SerialNumber.String(), r.serial
}

func serialOf(t *testing.T, path string) string {
	t.Helper()
	c, err := ReadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// reissue writes a new certificate and key for id over files, the way an
// operator rotates them: new content, new files renamed into place.
func reissue(t *testing.T, pki DevPKI, files Files, id Identity, validity time.Duration) {
	t.Helper()
	ca, err := LoadCA(pki.Controller.CA, filepath.Join(pki.Dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := Leaf{Identity: id, Validity: validity}
	if id.Role == RoleController {
		leaf.DNSNames = []string{"localhost"}
	}
	base := strings.TrimSuffix(filepath.Base(files.Cert), ".crt")
	if _, err := ca.IssueFiles(filepath.Dir(files.Cert), base, files.CA, leaf); err != nil {
		t.Fatal(err)
	}
}

// TestReloader_NextHandshakePresentsNewCertificate: replace the files of
// both a server and a client; the next handshake presents the new
// certificates, with no restart and no signal.
func TestReloader_NextHandshakePresentsNewCertificate(t *testing.T) {
	t.Parallel()
	pki, err := EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(pki.Controller, WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(pki.Agent, "localhost", WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	oldServer, oldClient := serialOf(t, pki.Controller.Cert), serialOf(t, pki.Agent.Cert)
	serverSaw, clientSaw := handshakePeers(t, srv, cli)
	if serverSaw != oldClient || clientSaw != oldServer {
		t.Fatalf("first handshake saw %s/%s, want %s/%s", serverSaw, clientSaw, oldClient, oldServer)
	}

	reissue(t, pki, pki.Controller, Identity{RoleController, "dev-controller"}, time.Hour)
	reissue(t, pki, pki.Agent, Identity{RoleAgent, "a1"}, time.Hour)
	newServer, newClient := serialOf(t, pki.Controller.Cert), serialOf(t, pki.Agent.Cert)
	if newServer == oldServer || newClient == oldClient {
		t.Fatal("reissue did not change the certificates")
	}
	serverSaw, clientSaw = handshakePeers(t, srv, cli)
	if clientSaw != newServer {
		t.Errorf("after rotation the server presented %s, want the new %s", clientSaw, newServer)
	}
	if serverSaw != newClient {
		t.Errorf("after rotation the client presented %s, want the new %s", serverSaw, newClient)
	}
}

// TestReloader_BrokenSetKeepsPrevious: a certificate replaced without its
// key does not load; the previous pair stays in use and one warning says
// why.
func TestReloader_BrokenSetKeepsPrevious(t *testing.T) {
	t.Parallel()
	pki, err := EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := NewReloader(pki.Controller, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	before := serialOf(t, pki.Controller.Cert)
	// The agent's certificate with the controller's key: a mismatch.
	agentPEM, err := os.ReadFile(pki.Agent.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(pki.Controller.Cert, agentPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		cert, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cert.Leaf.SerialNumber.String(); got != before {
			t.Fatalf("a broken set replaced the certificate: serial %s, want %s", got, before)
		}
	}
	if n := strings.Count(logs.String(), "cannot be loaded"); n != 1 {
		t.Errorf("%d warnings about the broken set, want 1:\n%s", n, logs.String())
	}
	if err := r.Reload(); err == nil {
		t.Error("Reload of a mismatched pair succeeded")
	}
}

// TestReloader_WarnsBeforeExpiry: a certificate with less than 14 days
// left is logged at start and again a day later, not at every handshake.
func TestReloader_WarnsBeforeExpiry(t *testing.T) {
	t.Parallel()
	pki, err := EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	reissue(t, pki, pki.Agent, Identity{RoleAgent, "a1"}, 10*24*time.Hour)
	now := time.Now()
	var logs bytes.Buffer
	r, err := NewReloader(pki.Agent, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), withClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _ = r.GetClientCertificate(nil)
	}
	if n := strings.Count(logs.String(), "certificate expires soon"); n != 1 {
		t.Fatalf("%d expiry warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "identity=agent/a1") {
		t.Errorf("the warning does not name the identity:\n%s", logs.String())
	}
	now = now.Add(ExpiryWarningEvery + time.Minute)
	_, _ = r.GetClientCertificate(nil)
	if n := strings.Count(logs.String(), "certificate expires soon"); n != 2 {
		t.Errorf("%d expiry warnings a day later, want 2", n)
	}
	now = now.Add(11 * 24 * time.Hour)
	_, _ = r.GetClientCertificate(nil)
	if !strings.Contains(logs.String(), "certificate has expired") {
		t.Errorf("no error once expired:\n%s", logs.String())
	}

	// A certificate with a long life is never mentioned.
	var quiet bytes.Buffer
	if _, err := NewReloader(pki.Controller, WithLogger(slog.New(slog.NewTextHandler(&quiet, nil)))); err != nil {
		t.Fatal(err)
	}
	if quiet.Len() != 0 {
		t.Errorf("a 30-day certificate was logged: %s", quiet.String())
	}
}
