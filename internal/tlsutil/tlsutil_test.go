package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestEnsureDevPKI_IdentitiesAndReuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := EnsureDevPKI(dir, "host-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files Files
		want  Identity
	}{
		{p.Controller, Identity{RoleController, "dev-controller"}},
		{p.Agent, Identity{RoleAgent, "host-1"}},
		{p.Admin, Identity{RoleAdmin, "dev-admin"}},
	} {
		if got := readIdentity(t, tc.files.Cert); got != tc.want {
			t.Errorf("identity of %s = %v, want %v", tc.files.Cert, got, tc.want)
		}
		if fi, err := os.Stat(tc.files.Key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key %s mode = %v, %v; want 0600", tc.files.Key, fi.Mode().Perm(), err)
		}
	}
	before, _ := os.ReadFile(p.Controller.CA)
	if _, err := EnsureDevPKI(dir, "host-1"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.Controller.CA)
	if string(before) != string(after) {
		t.Fatal("EnsureDevPKI replaced an existing CA")
	}
}

func readIdentity(t *testing.T, path string) Identity {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityFromCert(cert)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// handshake runs a TLS handshake between a server and a client config over
// an in-memory pipe and returns the server-side error.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	// net.Pipe ends never fail to close.
	c1, c2 := net.Pipe()
	defer func() { _, _ = c1.Close(), c2.Close() }()
	done := make(chan error, 1)
	go func() {
		cc := tls.Client(c2, client)
		done <- cc.Handshake()
		// Read so the server's post-handshake verdict reaches us.
		_, _ = cc.Read(make([]byte, 1))
		_ = cc.Close()
	}()
	sc := tls.Server(c1, server)
	err := sc.Handshake()
	_ = sc.Close()
	if cerr := <-done; cerr != nil {
		t.Logf("client side of the handshake: %v", cerr) // not the verdict under test
	}
	return err
}

func TestServerConfig_RequiresClientCertFromCA(t *testing.T) {
	t.Parallel()
	a, err := EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfig(a.Controller)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS13 {
		t.Fatalf("MinVersion = %x, want TLS 1.3", srv.MinVersion)
	}
	good, err := ClientConfig(a.Agent, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, good); err != nil {
		t.Fatalf("handshake with a certificate from the CA: %v", err)
	}
	// A client certificate from another CA: the server refuses it. The
	// client trusts the server's CA so only the client side is wrong.
	foreign := other.Agent
	foreign.CA = a.Controller.CA
	bad, err := ClientConfig(foreign, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, bad); err == nil {
		t.Fatal("handshake with a certificate from another CA succeeded")
	}
	// No client certificate at all.
	none := good.Clone()
	none.Certificates = nil
	none.GetClientCertificate = nil
	if err := handshake(t, srv, none); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
}

func TestIdentityFromCert_RejectsForeignURIs(t *testing.T) {
	t.Parallel()
	ca, _, _, err := NewCA("test", DevValidity)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue(Leaf{Identity: Identity{"root", "x"}, Validity: DevValidity}); err == nil {
		t.Fatal("Issue accepted an unknown role")
	}
	certPEM, _, err := ca.Issue(Leaf{Identity: Identity{RoleViewer, "v"}, Validity: DevValidity})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	cert.URIs[0].Host = "elsewhere"
	if _, err := IdentityFromCert(cert); err == nil {
		t.Fatal("IdentityFromCert accepted another trust domain")
	}
}

// TestIssue_ServerNamesOnlyForControllers: a DNS or IP name in any other
// role's certificate would let its holder pass a client's host-name check
// (issue 13, finding 5), so Issue refuses it and makes nothing.
func TestIssue_ServerNamesOnlyForControllers(t *testing.T) {
	t.Parallel()
	ca, _, _, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range Roles {
		for _, leaf := range []Leaf{
			{Identity: Identity{role, "n"}, DNSNames: []string{"localhost"}, Validity: time.Hour},
			{Identity: Identity{role, "n"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour},
		} {
			certPEM, _, err := ca.Issue(leaf)
			if role == RoleController {
				if err != nil {
					t.Errorf("Issue(controller with %v %v) = %v, want a certificate", leaf.DNSNames, leaf.IPs, err)
				}
				continue
			}
			if !errors.Is(err, ErrServerNamesForbidden) || certPEM != nil {
				t.Errorf("Issue(%s with %v %v) = %v, want ErrServerNamesForbidden and no certificate", role, leaf.DNSNames, leaf.IPs, err)
			}
		}
	}
}

// TestRequirePeerRole: the check a client makes of its server's
// certificate accepts the role asked for and nothing else.
func TestRequirePeerRole(t *testing.T) {
	t.Parallel()
	ca, _, _, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stateOf := func(id Identity) tls.ConnectionState {
		certPEM, _, err := ca.Issue(Leaf{Identity: id, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	}
	check := RequirePeerRole(RoleController)
	if err := check(stateOf(Identity{RoleController, "c1"})); err != nil {
		t.Errorf("controller refused: %v", err)
	}
	for _, role := range []string{RoleAgent, RoleViewer, RoleOperator, RoleAdmin} {
		if err := check(stateOf(Identity{role, "x"})); !errors.Is(err, ErrWrongPeerRole) {
			t.Errorf("%s accepted as a controller: %v", role, err)
		}
	}
	if err := check(tls.ConnectionState{}); !errors.Is(err, ErrWrongPeerRole) {
		t.Errorf("no certificate accepted: %v", err)
	}
	pin := RequirePeer(Identity{RoleController, "c1"})
	if err := pin(stateOf(Identity{RoleController, "c2"})); !errors.Is(err, ErrWrongPeerRole) {
		t.Errorf("controller c2 accepted as c1: %v", err)
	}
	if err := pin(stateOf(Identity{RoleController, "c1"})); err != nil {
		t.Errorf("controller c1 refused as c1: %v", err)
	}
}
