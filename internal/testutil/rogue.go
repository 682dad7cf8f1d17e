package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// IssueRogueServerCert signs, with the dev CA in pkiDir (ca.crt beside
// the controller files, ca.key), a certificate for id that is valid for
// localhost and the loopback addresses whatever its role: what
// `turbctl tls cert create --ip` issued before it refused server names for
// roles other than controller (issue 13). tlsutil.Issue refuses to make
// one, so the test builds it by hand. It returns the files under a fresh
// temporary directory.
func IssueRogueServerCert(t testing.TB, pki tlsutil.DevPKI, id tlsutil.Identity) tlsutil.Files {
	t.Helper()
	ca, err := tlsutil.LoadCA(pki.Controller.CA, filepath.Join(pki.Dir, "ca.key"))
	if err != nil {
		t.Fatalf("load dev CA: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id.Name, OrganizationalUnit: []string{id.Role}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		URIs:         nil,
	}
	tmpl.URIs = append(tmpl.URIs, id.URI())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := tlsutil.Files{CA: pki.Controller.CA, Cert: filepath.Join(dir, "rogue.crt"), Key: filepath.Join(dir, "rogue.key")}
	if err := os.WriteFile(files.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return files
}
