package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestTLS_Layout: cert create writes the layout the units and the
// daemons' defaults use (tlsutil.DefaultDir): machines by role, people by
// name, and ca.crt beside them.
func TestTLS_Layout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "tls")
	runCLI(t, nil, "tls", "ca", "create", "--dir", caDir).check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", "agent", "--name", "web-1").check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", "controller", "--name", "c1", "--ip", "198.18.0.1").check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", "operator", "--name", "alice").check(t, ExitOK)
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"agent.crt", "agent.key", "alice.crt", "alice.key", "ca.crt", "controller.crt", "controller.key"}
	if !slices.Equal(got, want) {
		t.Errorf("files in --out-dir = %v, want %v", got, want)
	}
	// A different ca.crt already there is another fleet's: refused.
	other := filepath.Join(dir, "other")
	runCLI(t, nil, "tls", "ca", "create", "--dir", other).check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", other, "--out-dir", out, "--role", "operator", "--name", "bob").
		check(t, ExitError, "another CA certificate")
	if _, err := os.Stat(filepath.Join(out, "bob.crt")); err == nil {
		t.Error("bob.crt written beside another CA's ca.crt")
	}
}

// TestTLS_Renew re-issues a controller certificate: same identity, same
// names, a new key and serial, both files replaced, the key still 0600,
// and it verifies against the CA.
func TestTLS_Renew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "tls")
	runCLI(t, nil, "tls", "ca", "create", "--dir", caDir).check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", "controller", "--name", "c1",
		"--ip", "198.18.0.1", "--dns", "c1.example", "--expiry", "24h").check(t, ExitOK)
	certPath, keyPath := filepath.Join(out, "controller.crt"), filepath.Join(out, "controller.key")
	old, err := tlsutil.ReadCertFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "-o", "json", "tls", "cert", "renew", "--ca-dir", caDir, "--cert", certPath, "--expiry", "48h")
	r.check(t, ExitOK)
	var res pkiResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if res.Identity != "spiffe://turbulence/controller/c1" || res.Key != keyPath {
		t.Errorf("renew printed %+v", res)
	}
	cur, err := tlsutil.ReadCertFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if cur.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("the certificate file was not replaced")
	}
	if !cur.NotAfter.After(old.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after the old one's %s", cur.NotAfter, old.NotAfter)
	}
	if !slices.Equal(cur.DNSNames, old.DNSNames) || len(cur.IPAddresses) != 1 || !cur.IPAddresses[0].Equal(old.IPAddresses[0]) {
		t.Errorf("names changed: %v %v, were %v %v", cur.DNSNames, cur.IPAddresses, old.DNSNames, old.IPAddresses)
	}
	newKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(newKey, oldKey) {
		t.Error("the key was not renewed")
	}
	assertMode(t, keyPath, 0o600)
	// The pair loads, as the daemons will load it.
	if _, err := tlsutil.ServerConfig(tlsutil.Files{CA: filepath.Join(out, "ca.crt"), Cert: certPath, Key: keyPath}); err != nil {
		t.Errorf("renewed pair does not load: %v", err)
	}
	// No temporary file is left behind.
	if m, _ := filepath.Glob(filepath.Join(out, "*.tmp")); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

// TestTLS_RenewRefusals: a certificate another CA signed, a bad expiry,
// a missing file: each refused with the reason, the files untouched.
func TestTLS_RenewRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, otherCA, out := filepath.Join(dir, "ca"), filepath.Join(dir, "other"), filepath.Join(dir, "tls")
	runCLI(t, nil, "tls", "ca", "create", "--dir", caDir).check(t, ExitOK)
	runCLI(t, nil, "tls", "ca", "create", "--dir", otherCA).check(t, ExitOK)
	runCLI(t, nil, "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", "agent", "--name", "web-1").check(t, ExitOK)
	certPath := filepath.Join(out, "agent.crt")
	before, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	beforeKey, err := os.ReadFile(filepath.Join(out, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	runCLI(t, nil, "tls", "cert", "renew", "--ca-dir", otherCA, "--cert", certPath).check(t, ExitError, "was not issued by this CA")
	runCLI(t, nil, "tls", "cert", "renew", "--ca-dir", caDir, "--cert", certPath, "--expiry", "0s").check(t, ExitInvalid, "--expiry must be positive")
	runCLI(t, nil, "tls", "cert", "renew", "--ca-dir", caDir, "--cert", certPath, "--expiry", "200000h").check(t, ExitError, "would outlive the CA")
	runCLI(t, nil, "tls", "cert", "renew", "--ca-dir", caDir).check(t, ExitUsage, "--ca-dir and --cert are required")
	runCLI(t, nil, "tls", "cert", "renew", "--ca-dir", caDir, "--cert", filepath.Join(out, "none.crt")).check(t, ExitError, "none.crt")
	after, _ := os.ReadFile(certPath)
	afterKey, _ := os.ReadFile(filepath.Join(out, "agent.key"))
	if !bytes.Equal(before, after) || !bytes.Equal(beforeKey, afterKey) {
		t.Error("a refused renewal changed the files")
	}
}
