package tlsutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DevPKI is the throwaway PKI of dev mode: a CA and one certificate each
// for the controller, a local agent and an admin (turbctl).
type DevPKI struct {
	Dir        string
	Controller Files
	Agent      Files
	Admin      Files
}

// DevValidity is how long dev-mode certificates live.
const DevValidity = 30 * 24 * time.Hour

// EnsureDevPKI creates a throwaway CA and certificates in dir, unless they
// exist already (a restarted dev controller keeps its PKI). The controller
// certificate is valid for localhost, 127.0.0.1 and ::1, and for each of
// extraSANs (IP addresses or DNS names, see ParseSANs): the names by which
// agents on other hosts reach a dev controller. A kept PKI whose
// controller certificate lacks one of extraSANs gets a new controller
// certificate from the same CA, so the agent and admin certificates made
// before stay valid. agentName is the name in the agent's certificate,
// which is also its agent ID.
func EnsureDevPKI(dir, agentName string, extraSANs ...string) (DevPKI, error) {
	p := DevPKI{
		Dir:        dir,
		Controller: devFiles(dir, "controller"),
		Agent:      devFiles(dir, "agent"),
		Admin:      devFiles(dir, "admin"),
	}
	dns, ips := []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, san := range extraSANs {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, san)
		}
	}
	controllerLeaf := Leaf{Identity: Identity{RoleController, "dev-controller"}, DNSNames: dns, IPs: ips, Validity: DevValidity}
	if exists(p.Controller.CA) && exists(p.Controller.Cert) && exists(p.Agent.Cert) && exists(p.Admin.Cert) {
		return p, p.coverSANs(controllerLeaf)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevPKI{}, fmt.Errorf("create PKI directory: %w", err)
	}
	ca, certPEM, keyPEM, err := NewCA("Turbulence dev CA", DevValidity)
	if err != nil {
		return DevPKI{}, fmt.Errorf("create dev CA: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
		return DevPKI{}, err
	}
	if err := writeFile(p.Controller.CA, certPEM, 0o644); err != nil {
		return DevPKI{}, err
	}
	leaves := []struct {
		base string
		leaf Leaf
	}{
		{"controller", controllerLeaf},
		{"agent", Leaf{Identity: Identity{RoleAgent, agentName}, Validity: DevValidity}},
		{"admin", Leaf{Identity: Identity{RoleAdmin, "dev-admin"}, Validity: DevValidity}},
	}
	for _, l := range leaves {
		if _, err := ca.IssueFiles(dir, l.base, p.Controller.CA, l.leaf); err != nil {
			return DevPKI{}, fmt.Errorf("issue %s certificate: %w", l.base, err)
		}
	}
	return p, nil
}

// coverSANs reissues the kept dev controller certificate from the dev CA
// when it does not carry every name of want.
func (p DevPKI) coverSANs(want Leaf) error {
	cur, err := ReadCertFile(p.Controller.Cert)
	if err != nil {
		return err
	}
	covered := true
	for _, d := range want.DNSNames {
		covered = covered && slices.Contains(cur.DNSNames, d)
	}
	for _, ip := range want.IPs {
		covered = covered && slices.ContainsFunc(cur.IPAddresses, ip.Equal)
	}
	if covered {
		return nil
	}
	ca, err := LoadCA(p.Controller.CA, filepath.Join(p.Dir, "ca.key"))
	if err != nil {
		return fmt.Errorf("reissue the dev controller certificate for new names: %w", err)
	}
	if _, err := ca.IssueFiles(p.Dir, "controller", p.Controller.CA, want); err != nil {
		return fmt.Errorf("reissue the dev controller certificate for new names: %w", err)
	}
	return nil
}

// ParseSANs splits a comma-separated list of subject alternative names
// and checks each: an IP address, or a DNS name of letters, digits and
// hyphens in dot-separated labels of 1 to 63 characters, 253 at most in
// all. An empty list item is refused, as is anything else, by name.
func ParseSANs(v string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if net.ParseIP(s) != nil {
			out = append(out, s)
			continue
		}
		if err := checkDNSName(s); err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

func checkDNSName(s string) error {
	if s == "" {
		return errors.New("empty name: give an IP address or a DNS name")
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is %d characters long; a DNS name has at most 253", s, len(s))
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is neither an IP address nor a DNS name: each dot-separated label has 1 to 63 characters", s)
		}
		for i := range len(label) {
			c := label[i]
			if !isAlnum(c) && (c != '-' || i == 0 || i == len(label)-1) {
				return fmt.Errorf("%q is neither an IP address nor a DNS name: character %q is not allowed there (letters, digits, inner hyphens)", s, c)
			}
		}
	}
	return nil
}

func devFiles(dir, base string) Files {
	return Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
