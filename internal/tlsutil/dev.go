package tlsutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
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
// certificate is valid for localhost, 127.0.0.1 and ::1 only. agentName is
// the name in the agent's certificate, which is also its agent ID.
func EnsureDevPKI(dir, agentName string) (DevPKI, error) {
	p := DevPKI{
		Dir:        dir,
		Controller: devFiles(dir, "controller"),
		Agent:      devFiles(dir, "agent"),
		Admin:      devFiles(dir, "admin"),
	}
	if exists(p.Controller.CA) && exists(p.Controller.Cert) && exists(p.Agent.Cert) && exists(p.Admin.Cert) {
		return p, nil
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
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	leaves := []struct {
		base string
		leaf Leaf
	}{
		{"controller", Leaf{Identity: Identity{RoleController, "dev-controller"}, DNSNames: []string{"localhost"}, IPs: loopback, Validity: DevValidity}},
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

func devFiles(dir, base string) Files {
	return Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
