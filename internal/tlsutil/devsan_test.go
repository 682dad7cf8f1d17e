package tlsutil

import (
	"net"
	"slices"
	"testing"
)

// TestEnsureDevPKI_ExtraSANs: the dev controller certificate carries the
// extra names; a kept PKI asked for a new name gets a new controller
// certificate from the same CA, and the agent's certificate is kept.
func TestEnsureDevPKI_ExtraSANs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := EnsureDevPKI(dir, "a1", "198.18.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c1, err := ReadCertFile(p.Controller.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(c1.IPAddresses, net.ParseIP("198.18.0.1").Equal) || !slices.Contains(c1.DNSNames, "localhost") {
		t.Errorf("controller names %v %v, want loopback and 198.18.0.1", c1.DNSNames, c1.IPAddresses)
	}
	agent1, _ := ReadCertFile(p.Agent.Cert)

	// The same names again: nothing is reissued.
	if _, err := EnsureDevPKI(dir, "a1", "198.18.0.1"); err != nil {
		t.Fatal(err)
	}
	if c, _ := ReadCertFile(p.Controller.Cert); c.SerialNumber.Cmp(c1.SerialNumber) != 0 {
		t.Error("controller certificate reissued though it already had every name")
	}
	// A new name: reissued, from the same CA, with the old names too.
	if _, err := EnsureDevPKI(dir, "a1", "198.18.0.1", "ctl.example"); err != nil {
		t.Fatal(err)
	}
	c2, err := ReadCertFile(p.Controller.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c2.DNSNames, "ctl.example") || !slices.ContainsFunc(c2.IPAddresses, net.ParseIP("198.18.0.1").Equal) {
		t.Errorf("reissued controller names %v %v", c2.DNSNames, c2.IPAddresses)
	}
	ca, _ := ReadCertFile(p.Controller.CA)
	if err := c2.CheckSignatureFrom(ca); err != nil {
		t.Errorf("reissued controller certificate not from the dev CA: %v", err)
	}
	if agent2, _ := ReadCertFile(p.Agent.Cert); agent2.SerialNumber.Cmp(agent1.SerialNumber) != 0 {
		t.Error("the agent certificate changed")
	}
}

func TestParseSANs(t *testing.T) {
	t.Parallel()
	got, err := ParseSANs(" 198.18.0.1 ,ctl.example,fd00::1")
	if err != nil || !slices.Equal(got, []string{"198.18.0.1", "ctl.example", "fd00::1"}) {
		t.Errorf("ParseSANs = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a..b", "ctl_1", "-a", "a-", "x/y", string(make([]byte, 254))} {
		if _, err := ParseSANs(bad); err == nil {
			t.Errorf("ParseSANs(%q) accepted", bad)
		}
	}
}
