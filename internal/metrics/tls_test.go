package metrics

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestRegisterCertExpiry shows the gauge for the reloaders of the
// process: one sample per identity, the NotAfter of the certificate in
// use, even when several reloaders load the same files.
func TestRegisterCertExpiry(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(t.TempDir(), "tls"), "metrics-agent")
	if err != nil {
		t.Fatal(err)
	}
	var rs []*tlsutil.Reloader
	for _, f := range []tlsutil.Files{pki.Agent, pki.Agent, pki.Controller} {
		r, err := tlsutil.NewReloader(f)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	reg := prometheus.NewRegistry()
	RegisterCertExpiry(reg)
	got := scrape(t, reg)
	runtime.KeepAlive(rs) // the registry of reloaders is weak

	for _, want := range []struct {
		role, name string
		r          *tlsutil.Reloader
	}{
		{tlsutil.RoleAgent, "metrics-agent", rs[0]},
		{tlsutil.RoleController, "", rs[2]},
	} {
		// Labels are written sorted by name: name, then role.
		line := ""
		for l := range strings.Lines(got) {
			if strings.HasPrefix(l, CertExpiryName+"{") && strings.Contains(l, fmt.Sprintf(`,role=%q}`, want.role)) &&
				(want.name == "" || strings.Contains(l, fmt.Sprintf(`{name=%q,`, want.name))) {
				if line != "" {
					t.Errorf("two samples for %s/%s:\n%s", want.role, want.name, got)
				}
				line = strings.TrimSpace(l)
			}
		}
		wantValue := strconv.FormatFloat(float64(want.r.NotAfter().Unix()), 'g', -1, 64)
		if !strings.HasSuffix(line, " "+wantValue) {
			t.Errorf("sample for %s = %q, want value %s; exposition:\n%s", want.role, line, wantValue, got)
		}
	}
}
