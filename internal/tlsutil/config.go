package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files names the PEM files of one party: the CA that signs every
// Turbulence certificate, and the party's own certificate and key.
type Files struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

func (f Files) load() (*x509.CertPool, tls.Certificate, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("CA file %s holds no PEM certificate", f.CA)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load key pair %s: %w", f.Cert, err)
	}
	return pool, pair, nil
}

// ServerConfig is a TLS 1.3 server configuration that requires and
// verifies a client certificate signed by the CA. The files are
// re-read when they change (Reloader), so a rotated certificate is
// served from the next handshake on without a restart.
func ServerConfig(f Files, opts ...Option) (*tls.Config, error) {
	r, err := NewReloader(f, opts...)
	if err != nil {
		return nil, err
	}
	return r.ServerConfig(), nil
}

// ClientConfig is a TLS 1.3 client configuration that presents the
// party's certificate (re-read when its files change) and verifies the
// server against the CA. serverName may be empty, in which case the
// dialled host name is used.
func ClientConfig(f Files, serverName string, opts ...Option) (*tls.Config, error) {
	r, err := NewReloader(f, opts...)
	if err != nil {
		return nil, err
	}
	return r.ClientConfig(serverName), nil
}
