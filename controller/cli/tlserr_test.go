package cli

import (
	"testing"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestTLSTrustFailures: a certificate that the other side does not
// trust is not "controller unavailable" (which sent people to check the
// network, issue 17): it exits ExitTLS with a message naming the file
// and what did not match.
func TestTLSTrustFailures(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	other, err := tlsutil.EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files tlsutil.Files
		extra []string
		want  []string
	}{
		{"server not signed by --ca", tlsutil.Files{CA: other.Admin.CA, Cert: h.admin.Cert, Key: h.admin.Key}, nil,
			[]string{"TLS trust failure", "is not signed by the CA in --ca " + other.Admin.CA}},
		{"client not trusted by the controller", tlsutil.Files{CA: h.admin.CA, Cert: other.Admin.Cert, Key: other.Admin.Key}, nil,
			[]string{"TLS trust failure", "refused the client certificate --cert " + other.Admin.Cert}},
		{"name mismatch", h.admin, []string{"--tls-server-name", "ctl.example"},
			[]string{"TLS trust failure", "not valid for ctl.example", "--tls-server-name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--controller", h.addr, "--ca", tt.files.CA, "--cert", tt.files.Cert, "--key", tt.files.Key, "--timeout", "20s"}, tt.extra...)
			r := runCLI(t, nil, append(args, "agents", "ls")...)
			r.check(t, ExitTLS, tt.want...)
		})
	}
}
