package cli

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestTLS_CAAndEveryRole creates a CA and one certificate per role with
// turbctl, offline (no controller runs), and checks each file.
func TestTLS_CAAndEveryRole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "certs")
	// An unreachable controller proves the commands never dial.
	noController := map[string]string{EnvController: "127.0.0.1:1"}

	r := runCLI(t, noController, "tls", "ca", "create", "--dir", caDir)
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, filepath.Join(caDir, "ca.key")+" (mode 0600)") {
		t.Errorf("ca create output:\n%s", r.stdout)
	}
	assertMode(t, filepath.Join(caDir, "ca.key"), 0o600)
	caCert, err := tlsutil.ReadCertFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)

	for _, role := range tlsutil.Roles {
		args := []string{"-o", "json", "tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out, "--role", role, "--name", "n-" + role, "--expiry", "48h"}
		if role == tlsutil.RoleController {
			args = append(args, "--dns", "c1.example", "--ip", "198.18.0.1")
		}
		r := runCLI(t, noController, args...)
		r.check(t, ExitOK)
		var res pkiResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("%s: output is not JSON: %v\n%s", role, err, r.stdout)
		}
		if want := "spiffe://turbulence/" + role + "/n-" + role; res.Identity != want {
			t.Errorf("%s: identity %q, want %q", role, res.Identity, want)
		}
		assertMode(t, res.Key, 0o600)
		cert, err := tlsutil.ReadCertFile(res.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: certificate does not verify against the CA: %v", role, err)
		}
		id, err := tlsutil.IdentityFromCert(cert)
		if err != nil || id != (tlsutil.Identity{Role: role, Name: "n-" + role}) {
			t.Errorf("%s: identity from certificate = %v, %v", role, id, err)
		}
		if life := time.Until(cert.NotAfter); life < 47*time.Hour || life > 49*time.Hour {
			t.Errorf("%s: certificate lives %s more, want about 48h", role, life)
		}
		if role == tlsutil.RoleController && (len(cert.DNSNames) != 1 || len(cert.IPAddresses) != 1) {
			t.Errorf("controller SANs = %v %v", cert.DNSNames, cert.IPAddresses)
		}
	}
}

func TestTLS_Refusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "certs")
	runCLI(t, nil, "tls", "ca", "create", "--dir", caDir).check(t, ExitOK)
	cert := func(extra ...string) result {
		return runCLI(t, nil, append([]string{"tls", "cert", "create", "--ca-dir", caDir, "--out-dir", out}, extra...)...)
	}
	tests := []struct {
		name string
		r    func() result
		code int
		msg  string
	}{
		{"CA exists", func() result { return runCLI(t, nil, "tls", "ca", "create", "--dir", caDir) }, ExitError, "refusing to replace a CA"},
		{"unknown role", func() result { return cert("--role", "root", "--name", "x") }, ExitInvalid,
			`unknown role "root": the roles are controller, agent, viewer, operator, admin`},
		{"slash in name", func() result { return cert("--role", "agent", "--name", "a/b") }, ExitInvalid, `character '/' is not allowed`},
		{"dot dot", func() result { return cert("--role", "agent", "--name", "a..b") }, ExitInvalid, `must not contain ".."`},
		{"long name", func() result { return cert("--role", "agent", "--name", strings.Repeat("a", 65)) }, ExitInvalid, "the maximum is 64"},
		{"no name", func() result { return cert("--role", "agent") }, ExitUsage, "name is required"},
		{"controller without address", func() result { return cert("--role", "controller", "--name", "c1") }, ExitUsage, "needs --dns or --ip"},
		{"IP SAN for an operator", func() result {
			return cert("--role", "operator", "--name", "o", "--ip", "127.0.0.1")
		}, ExitInvalid, "only controller certificates may carry DNS or IP names"},
		{"DNS SAN for an agent", func() result {
			return cert("--role", "agent", "--name", "a", "--dns", "localhost")
		}, ExitInvalid, "only controller certificates may carry DNS or IP names"},
		{"outlives the CA", func() result { return cert("--role", "agent", "--name", "a", "--expiry", "200000h") }, ExitError, "would outlive the CA"},
		{"no CA", func() result {
			return runCLI(t, nil, "tls", "cert", "create", "--ca-dir", filepath.Join(dir, "none"), "--out-dir", out, "--role", "agent", "--name", "a")
		}, ExitError, "load CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r().check(t, tt.code, tt.msg)
		})
	}
	// Issuing the same identity twice refuses rather than overwrites.
	cert("--role", "agent", "--name", "web-1").check(t, ExitOK)
	cert("--role", "agent", "--name", "web-1").check(t, ExitError, "remove it first")
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %v, want %v", path, got, want)
	}
}
