package tlsutil

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names of a CA directory made by CreateCADir.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// DefaultCAValidity and DefaultLeafValidity are the lifetimes of `turbctl
// tls` certificates when none is given: a CA for ten years, a leaf for 30
// days, so that rotation (and its reload without restart) is routine
// rather than an emergency.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 30 * 24 * time.Hour
)

// ErrExists is returned instead of overwriting a CA or a certificate:
// replacing a CA by accident locks the whole fleet out.
var ErrExists = errors.New("file exists")

// CreateCADir creates a CA in dir (created 0700 if missing) as ca.crt
// (0644) and ca.key (0600). It refuses to overwrite an existing CA.
func CreateCADir(dir, commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("expiry must be positive, got %s", validity)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%s: %w; refusing to replace a CA (every certificate it signed would stop working)", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	ca, certPEM, keyPEM, err := NewCA(commonName, validity)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadCADir loads the CA that CreateCADir wrote in dir.
func LoadCADir(dir string) (*CA, error) {
	ca, err := LoadCA(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	return ca, nil
}

// IssueChecked validates leaf (role, name, expiry within the CA's own
// life) and issues it into dir in the layout described at DefaultDir:
// the certificate and key (0600) under LeafBase's name, and a copy of
// the CA certificate in caPath as dir/ca.crt unless it is already there.
// It refuses to overwrite an existing certificate or key (renewing is
// Renew's business) or another CA certificate.
func (ca *CA) IssueChecked(dir, caPath string, leaf Leaf) (Files, error) {
	if err := ValidateRole(leaf.Identity.Role); err != nil {
		return Files{}, fmt.Errorf("role: %w", err)
	}
	if err := ValidateName(leaf.Identity.Name); err != nil {
		return Files{}, fmt.Errorf("name: %w", err)
	}
	if err := ca.checkValidity(leaf.Validity); err != nil {
		return Files{}, err
	}
	files := LayoutFiles(dir, leaf.Identity)
	for _, p := range []string{files.Cert, files.Key} {
		if _, err := os.Stat(p); err == nil {
			return Files{}, fmt.Errorf("%s: %w; renew it with 'turbctl tls cert renew', or remove it first to issue another identity", p, ErrExists)
		}
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return Files{}, fmt.Errorf("read CA certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("create output directory: %w", err)
	}
	if err := placeCA(files.CA, caPEM); err != nil {
		return Files{}, err
	}
	if _, err := ca.IssueFiles(dir, LeafBase(leaf.Identity), files.CA, leaf); err != nil {
		return Files{}, err
	}
	return files, nil
}

// checkValidity refuses a leaf lifetime that is not positive or that
// would outlive the CA.
func (ca *CA) checkValidity(v time.Duration) error {
	if v <= 0 {
		return fmt.Errorf("expiry must be positive, got %s", v)
	}
	if end := time.Now().Add(v); end.After(ca.Cert.NotAfter) {
		return fmt.Errorf("expiry %s would outlive the CA, which expires %s", v, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// ReadCertFile parses the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return cert, nil
}
