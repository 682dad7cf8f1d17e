package tlsutil

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TrustDomain is the SPIFFE trust domain of every Turbulence identity.
const TrustDomain = "turbulence"

// Roles a certificate can carry.
const (
	RoleController = "controller"
	RoleAgent      = "agent"
	RoleAdmin      = "admin"
	RoleOperator   = "operator"
	RoleViewer     = "viewer"
)

// ErrNoIdentity is returned when a peer presents no usable identity.
var ErrNoIdentity = errors.New("no turbulence identity in peer certificate")

// Identity is who holds a certificate.
type Identity struct {
	Role string
	Name string
}

func (id Identity) String() string { return id.Role + "/" + id.Name }

// URI returns the identity as a SPIFFE ID.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/" + id.Role + "/" + id.Name}
}

// ValidRole reports whether role is one of the known roles.
func ValidRole(role string) bool {
	switch role {
	case RoleController, RoleAgent, RoleAdmin, RoleOperator, RoleViewer:
		return true
	}
	return false
}

// IdentityFromCert reads the identity from a certificate's URI SAN.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != TrustDomain {
			continue
		}
		role, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if ok && ValidRole(role) && name != "" && !strings.Contains(name, "/") {
			return Identity{Role: role, Name: name}, nil
		}
	}
	return Identity{}, ErrNoIdentity
}

// PeerIdentity returns the verified identity of the caller of a gRPC
// handler. It fails unless the connection is mutual TLS with a verified
// client chain.
func PeerIdentity(ctx context.Context) (Identity, error) {
	cert, err := PeerCertificate(ctx)
	if err != nil {
		return Identity{}, err
	}
	return IdentityFromCert(cert)
}

// PeerCertificate returns the caller's verified leaf certificate, for
// what the identity does not say (its expiry). It fails as PeerIdentity
// does unless the connection is mutual TLS with a verified client chain.
func PeerCertificate(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("%w: no peer", ErrNoIdentity)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("%w: connection is not TLS", ErrNoIdentity)
	}
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, fmt.Errorf("%w: client certificate not verified", ErrNoIdentity)
	}
	return info.State.VerifiedChains[0][0], nil
}
