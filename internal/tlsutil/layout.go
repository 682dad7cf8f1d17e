package tlsutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultDir is where a host keeps its Turbulence certificate files, in
// the one layout that `turbctl tls cert create` writes, the systemd units
// name and the daemons default to (docs/operations.md, "Certificates"):
//
//	DefaultDir/ca.crt                                 the fleet's CA certificate
//	DefaultDir/agent.crt, agent.key                   an agent host's identity
//	DefaultDir/controller.crt, controller.key         a controller node's identity
//	DIR/NAME.crt, NAME.key                            a person's (viewer, operator, admin)
//
// A machine has one identity per role, so its files are named after the
// role: its units and its flags' defaults then need no per-host names.
// People are many on one workstation, so theirs are named after them.
const DefaultDir = "/etc/turbulence/tls"

// LeafBase is the file name, without extension, of the certificate and
// key of identity id in the layout described at DefaultDir.
func LeafBase(id Identity) string {
	switch id.Role {
	case RoleAgent, RoleController:
		return id.Role
	}
	return id.Name
}

// LayoutFiles are the files of identity id in dir, with the CA
// certificate beside them.
func LayoutFiles(dir string, id Identity) Files {
	base := filepath.Join(dir, LeafBase(id))
	return Files{CA: filepath.Join(dir, CACertFile), Cert: base + ".crt", Key: base + ".key"}
}

// placeCA makes dst a copy of the CA certificate caPEM, unless it already
// is one. A different certificate at dst is another fleet's CA (or an
// old one): replacing it would cut this host off from whoever it trusts
// now, so it is refused.
func placeCA(dst string, caPEM []byte) error {
	have, err := os.ReadFile(dst)
	switch {
	case err == nil:
		if bytes.Equal(bytes.TrimSpace(have), bytes.TrimSpace(caPEM)) {
			return nil
		}
		return fmt.Errorf("%s: %w and is another CA certificate than the one issuing; remove it or use another --out-dir", dst, ErrExists)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return writeFile(dst, caPEM, 0o644)
}
