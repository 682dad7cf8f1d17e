package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can issue Turbulence certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA valid for validity.
func NewCA(commonName string, validity time.Duration) (*CA, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Turbulence"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return &CA{Cert: cert, Key: key}, encodeCert(der), keyPEM, nil
}

// LoadCA reads a CA certificate and key from PEM files.
func LoadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("CA files hold no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	Identity Identity
	// DNSNames and IPs are the server names the certificate is valid for;
	// only servers need them.
	DNSNames []string
	IPs      []net.IP
	Validity time.Duration
	// NotBefore, when not zero, starts the validity there and ends it
	// Validity later, instead of from a minute ago (the minute absorbs
	// clock skew) to Validity from now. Tests use it to make
	// certificates that have already expired.
	NotBefore time.Time
}

// ErrServerNamesForbidden is the cause of a refusal to put DNS or IP
// names in a certificate whose role is not controller.
var ErrServerNamesForbidden = errors.New("only controller certificates may carry DNS or IP names")

// CheckServerNames refuses DNS or IP names for any role but controller.
// Only controllers serve: a name in an operator's certificate would let
// its holder pass a client's host-name check while posing as a
// controller, which only the role check (RequirePeerRole) would catch.
func CheckServerNames(role string, dns []string, ips []net.IP) error {
	if role == RoleController || len(dns)+len(ips) == 0 {
		return nil
	}
	return fmt.Errorf("%w: a %s certificate was asked for %d DNS and %d IP names", ErrServerNamesForbidden, role, len(dns), len(ips))
}

// Issue signs a certificate for leaf and returns it and its key as PEM.
// Every certificate is usable for both client and server authentication,
// since controllers are both (raft peers dial each other).
func (ca *CA) Issue(leaf Leaf) (certPEM, keyPEM []byte, err error) {
	if !ValidRole(leaf.Identity.Role) || leaf.Identity.Name == "" {
		return nil, nil, fmt.Errorf("invalid identity %q", leaf.Identity)
	}
	if err := CheckServerNames(leaf.Identity.Role, leaf.DNSNames, leaf.IPs); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Minute), now.Add(leaf.Validity)
	if !leaf.NotBefore.IsZero() {
		notBefore, notAfter = leaf.NotBefore, leaf.NotBefore.Add(leaf.Validity)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: leaf.Identity.Name, OrganizationalUnit: []string{leaf.Identity.Role}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         nil,
		DNSNames:     leaf.DNSNames,
		IPAddresses:  leaf.IPs,
	}
	tmpl.URIs = append(tmpl.URIs, leaf.Identity.URI())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// IssueFiles issues a certificate and writes it as <dir>/<base>.crt and
// <dir>/<base>.key (the key mode 0600), returning the Files triple.
func (ca *CA) IssueFiles(dir, base, caPath string, leaf Leaf) (Files, error) {
	certPEM, keyPEM, err := ca.Issue(leaf)
	if err != nil {
		return Files{}, err
	}
	f := Files{CA: caPath, Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
	if err := writeFile(f.Key, keyPEM, 0o600); err != nil {
		return Files{}, err
	}
	if err := writeFile(f.Cert, certPEM, 0o644); err != nil {
		return Files{}, err
	}
	return f, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writeFile writes data atomically (temp file + rename) with mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
